# Shared by bench/ledger.sh and bench/replicas.sh: tenants with credits and one key each.
# Expects WORK (a scratch folder) and ADMIN (the admin token the servers run with).

# Creates TENANTS tenants on the server at PORT, each granted CREDITS and given an infer key,
# and writes the keys, one per line, to FILE. Idempotent per server: existing tenants fail
# with 409 and are skipped only if FILE already lists their key, so call it once per database.
make_tenants() { # port count credits file
  local port=$1 count=$2 credits=$3 file=$4 i name key
  : >"$file"
  for i in $(seq 1 "$count"); do
    name=bench-$i
    curl -fs -X POST -H "Authorization: Bearer $ADMIN" -H 'Content-Type: application/json' \
      -d "{\"name\":\"$name\"}" "http://127.0.0.1:$port/admin/tenants" >/dev/null
    curl -fs -X POST -H "Authorization: Bearer $ADMIN" -H 'Content-Type: application/json' \
      -d "{\"amount\":\"$credits\"}" "http://127.0.0.1:$port/admin/tenants/$name/credits" >/dev/null
    key=$(curl -fs -X POST -H "Authorization: Bearer $ADMIN" -H 'Content-Type: application/json' \
      -d '{"scopes":["infer"]}' "http://127.0.0.1:$port/admin/tenants/$name/keys" |
      python3 -c 'import json, sys; print(json.load(sys.stdin)["key"])')
    echo "$key" >>"$file"
  done
}

# A wrk script sending bench/infer.lua's body with a key picked at random from FILE per request.
tenants_lua() { # keys-file lua-file
  {
    echo 'local keys = {'
    sed 's/.*/  "&",/' "$1"
    echo '}'
    cat <<'LUA'
local body = '{"inputs":[{"name":"features","shape":[1,10],"datatype":"FP32","data":[250,40.5,1,14,6,1,2,1,4,1]}]}'
local requests = {}
init = function()
  for i, key in ipairs(keys) do
    requests[i] = wrk.format("POST", nil, {["Content-Type"] = "application/json", ["X-API-Key"] = key}, body)
  end
end
request = function() return requests[math.random(#requests)] end
LUA
  } >"$2"
}
