import CortexCore
import CortexServer
import CortexStore
import Foundation
import Hummingbird
import HummingbirdTesting
import Testing

@Suite("Billing: holds, 402, idempotency and the credits API, on SQLite and PostgreSQL")
struct BillingTests {
    static let adminToken = "admin-token-0123456789abcdef"
    static var admin: HTTPFields { [.authorization: "Bearer \(adminToken)"] }
    static var demo: HTTPFields { [.xAPIKey: CortexConfiguration.demoAPIKey] }
    static let lead = #"{"features":{"pages_viewed":12,"email_opens":3}}"#

    /// A server that bills `price` per lead-scoring request, with the demo tenant holding `credits`.
    static func server(_ database: TestServer.Database, price: String = "0.25", credits: String = "1") async throws -> TestServer {
        try await TestServer.make(database: database) { configuration in
            configuration.auth.requireAPIKey = true
            configuration.auth.demo = .on
            configuration.auth.adminToken = adminToken
            configuration.billing.prices = ["lead-scoring": Credits(decimal: price) ?? .zero]
            configuration.billing.demoCredits = Credits(decimal: credits) ?? .zero
        }
    }

    static func me(_ client: some TestClientProtocol, _ headers: HTTPFields = demo) async throws -> [String: Any] {
        try await client.get("/me", headers: headers).body.jsonObject
    }

    @Test(
        "each 200 costs the price; past the balance a 402 names balance and price, logs BILLING_FAIL and counts credits_exhausted",
        arguments: TestServer.Database.allCases)
    func exhaustion(database: TestServer.Database) async throws {
        let server = try await Self.server(database, price: "0.4", credits: "1")
        try await server.test { client async throws in
            for expected in ["0.6", "0.2"] {
                let response = try await client.post("/api/v1/score", json: Self.lead, headers: Self.demo)
                #expect(response.status == .ok)
                #expect(response.headers[.xCreditsCharged] == "0.4")
                #expect(response.headers[.xCreditsBalance] == expected)
            }
            let refused = try await client.post("/api/v1/score", json: Self.lead, headers: Self.demo)
            #expect(refused.status.code == 402)
            let error = refused.body.jsonObject
            #expect(error["code"] as? String == "credits_exhausted")
            #expect((error["balance"] as? NSNumber)?.decimalValue == Decimal(string: "0.2"))
            #expect((error["price"] as? NSNumber)?.decimalValue == Decimal(string: "0.4"))

            let me = try await Self.me(client)
            #expect((me["balance"] as? NSNumber)?.decimalValue == Decimal(string: "0.2"))
            #expect((me["held"] as? NSNumber)?.intValue == 0)
            let usage = me["usage"] as? [String: Any]
            #expect((usage?["requests"] as? NSNumber)?.intValue == 2)
            #expect((usage?["credits_spent"] as? NSNumber)?.decimalValue == Decimal(string: "0.8"))

            let metrics = try await client.get("/metrics").body.text
            #expect(metrics.contains(#"inference_outcome_total{model="lead-scoring",outcome="credits_exhausted"} 1"#))
            #expect(metrics.contains(#"credits_spent_total{model="lead-scoring"} 0.8"#))
            #expect(metrics.contains(#"inference_outcome_total{model="lead-scoring",outcome="success"} 2"#))
        }
        let failures = server.logs.events(named: "BILLING_FAIL")
        #expect(failures.count == 1)
        #expect(failures.first?.metadata["balance"] == "0.2")
        #expect(failures.first?.metadata["price"] == "0.4")
        #expect(failures.first?.metadata["tenant"] == "demo")
    }

    @Test("invalid input is refused before any hold: nothing is charged", arguments: TestServer.Database.allCases)
    func invalidInputIsFree(database: TestServer.Database) async throws {
        let server = try await Self.server(database, price: "1", credits: "1")
        try await server.test { client async throws in
            let bad = try await client.post("/api/v1/score", json: #"{"features":{"nope":1}}"#, headers: Self.demo)
            #expect(bad.status == .unprocessableContent)
            let oip = try await client.post(
                "/v2/models/lead-scoring/infer",
                json: #"{"inputs":[{"name":"features","shape":[1,3],"datatype":"FP32","data":[1,2,3]}]}"#,
                headers: Self.demo
            )
            #expect(oip.status == .badRequest)
            #expect((try await Self.me(client)["balance"] as? NSNumber)?.intValue == 1)
        }
        #expect(server.logs.events(named: "BILLING_FAIL").isEmpty)
    }

    @Test("work that fails after the hold is released: no charge, the error passes through", arguments: TestServer.Database.allCases)
    func failureReleases(database: TestServer.Database) async throws {
        let server = try await Self.server(database, price: "1", credits: "1")
        let billing = server.dependencies.billing
        let authenticator = server.dependencies.authenticator
        try await server.test(addingRoutes: { router in
            router.group().add(middleware: APIKeyMiddleware(authenticator: authenticator, scope: .infer))
                .post("/test/fail") { request, context in
                    let body = try await request.body.collect(upTo: 1024)
                    let charged = try await billing.charge(model: "lead-scoring", request: request, body: body, context: context) {
                        throw APIError.inferenceFailed(model: "lead-scoring")
                    }
                    Issue.record("the work threw, so billing must have: \(charged)")
                    return Response(status: .ok)
                }
        }) { client async throws in
            #expect(try await client.post("/test/fail", json: "{}", headers: Self.demo).status == .internalServerError)
            let me = try await Self.me(client)
            #expect((me["balance"] as? NSNumber)?.intValue == 1)
            #expect((me["held"] as? NSNumber)?.intValue == 0)
            // The credit is really there: the next request spends it.
            #expect(try await client.post("/api/v1/score", json: Self.lead, headers: Self.demo).status == .ok)
            let store = server.dependencies.store
            let tenant = try #require(try await store.tenant(named: "demo"))
            let kinds = try await store.ledger.entries(tenantID: tenant.id, limit: 10, before: nil).map(\.kind)
            #expect(kinds == [.settle, .hold, .release, .hold, .grant])
            #expect(try await store.verify().isEmpty)
        }
    }

    @Test(
        "Idempotency-Key: a retry gets the first answer uncharged; the key with another body is 422",
        arguments: TestServer.Database.allCases)
    func idempotency(database: TestServer.Database) async throws {
        let server = try await Self.server(database, price: "0.5", credits: "1")
        try await server.test { client async throws in
            var headers = Self.demo
            headers[.idempotencyKey] = "order-1234"
            let first = try await client.post("/api/v1/score", json: Self.lead, headers: headers)
            #expect(first.status == .ok)
            #expect(first.headers[.xCreditsCharged] == "0.5")
            let retry = try await client.post("/api/v1/score", json: Self.lead, headers: headers)
            #expect(retry.status == .ok)
            #expect(retry.headers[.idempotentReplayed] == "true")
            #expect(retry.headers[.xCreditsCharged] == "0")
            #expect(retry.body.text == first.body.text)

            let other = try await client.post("/api/v1/score", json: #"{"features":{"pages_viewed":1}}"#, headers: headers)
            #expect(other.status == .unprocessableContent)
            #expect(other.body.jsonObject["code"] as? String == "idempotency_key_reused")

            headers[.idempotencyKey] = "has space"
            #expect(try await client.post("/api/v1/score", json: Self.lead, headers: headers).status == .badRequest)
            #expect((try await Self.me(client)["balance"] as? NSNumber)?.decimalValue == Decimal(string: "0.5"))
        }
    }

    @Test("a repeated X-Request-ID is not charged twice", arguments: TestServer.Database.allCases)
    func duplicateRequestID(database: TestServer.Database) async throws {
        let server = try await Self.server(database, price: "0.5", credits: "1")
        try await server.test { client async throws in
            var headers = Self.demo
            headers[.xRequestID] = "client-chosen-id-1"
            #expect(try await client.post("/api/v1/score", json: Self.lead, headers: headers).status == .ok)
            let again = try await client.post("/api/v1/score", json: Self.lead, headers: headers)
            #expect(again.status == .conflict)
            #expect(again.body.jsonObject["code"] as? String == "duplicate_request")
            #expect((try await Self.me(client)["balance"] as? NSNumber)?.decimalValue == Decimal(string: "0.5"))
        }
    }

    @Test("admin grants and reads credits; tenants spend and see only their own", arguments: TestServer.Database.allCases)
    func adminAndIsolation(database: TestServer.Database) async throws {
        let server = try await Self.server(database, price: "1", credits: "0")
        try await server.test { client async throws in
            #expect(try await client.post("/admin/tenants", json: #"{"name":"acme"}"#, headers: Self.admin).status == .created)
            let issued = try await client.post("/admin/tenants/acme/keys", json: "{}", headers: Self.admin).body.jsonObject
            let acme: HTTPFields = [.xAPIKey: try #require(issued["key"] as? String)]

            let grant = try await client.post("/admin/tenants/acme/credits", json: #"{"amount":"2.5","note":"trial"}"#, headers: Self.admin)
            #expect(grant.status == .ok)
            #expect((grant.body.jsonObject["balance"] as? NSNumber)?.decimalValue == Decimal(string: "2.5"))
            for (body, status) in [
                (#"{"amount":"-3"}"#, HTTPResponse.Status.conflict), (#"{"amount":"0"}"#, .unprocessableContent),
                (#"{"amount":"1.0000001"}"#, .unprocessableContent), (#"{"amount":true}"#, .badRequest), (#"{}"#, .badRequest),
            ] {
                #expect(try await client.post("/admin/tenants/acme/credits", json: body, headers: Self.admin).status == status)
            }
            #expect(
                try await client.post("/admin/tenants/nobody/credits", json: #"{"amount":"1"}"#, headers: Self.admin).status == .notFound)
            // A tenant's key is not an admin credential.
            #expect(try await client.post("/admin/tenants/acme/credits", json: #"{"amount":"5"}"#, headers: acme).status == .forbidden)

            // acme spends its own credits; demo (balance 0) cannot spend acme's.
            #expect(try await client.post("/api/v1/score", json: Self.lead, headers: acme).status == .ok)
            #expect(try await client.post("/api/v1/score", json: Self.lead, headers: Self.demo).status.code == 402)
            #expect((try await Self.me(client, acme)["balance"] as? NSNumber)?.decimalValue == Decimal(string: "1.5"))
            #expect((try await Self.me(client)["balance"] as? NSNumber)?.intValue == 0)

            let credits = try await client.get("/admin/tenants/acme/credits?limit=2", headers: Self.admin)
            #expect(credits.status == .ok)
            let object = credits.body.jsonObject
            let kinds = (object["entries"] as? [[String: Any]])?.compactMap { $0["kind"] as? String }
            #expect(kinds == ["settle", "hold"])
            #expect(object["next_before"] is NSNumber)
            #expect(try await client.get("/admin/tenants/acme/credits?limit=0", headers: Self.admin).status == .unprocessableContent)
        }
    }
}
