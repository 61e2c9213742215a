// k6: GET /healthz at 32 virtual users for 30 s (the A/B image service's load test).
//   docker run --rm -i --network host grafana/k6 run - < load/k6/healthz.js
//   docker run --rm -i --network host -e BASE_URL=http://localhost:8000 grafana/k6 run --out json=results/healthz.json - < load/k6/healthz.js
// make load-test runs the same scenario here with locust (load/locustfile.py).
import http from 'k6/http';
import { check } from 'k6';

export const options = {
  vus: Number(__ENV.VUS || 32),
  duration: __ENV.DURATION || '30s',
  thresholds: {
    http_req_failed: ['rate<0.01'],
    http_req_duration: ['p(99)<50'],
  },
};

const BASE_URL = __ENV.BASE_URL || 'http://localhost:8000';

export default function () {
  const response = http.get(`${BASE_URL}/healthz`);
  check(response, { 'status is 200': (r) => r.status === 200 });
}
