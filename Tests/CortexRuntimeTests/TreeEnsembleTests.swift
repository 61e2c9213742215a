import CortexCore
import Foundation
import Testing

@testable import CortexRuntime

@Suite("XGBoost JSON parity")
struct TreeEnsembleParityTests {
    @Test(
        "predictions match xgboost's to 1e-6",
        arguments: [
            ("models/lead-scoring/model.json", "models/lead-scoring/expected.json"),
            ("Tests/CortexRuntimeTests/Fixtures/regression.json", "Tests/CortexRuntimeTests/Fixtures/regression.expected.json"),
            ("Tests/CortexRuntimeTests/Fixtures/multiclass.json", "Tests/CortexRuntimeTests/Fixtures/multiclass.expected.json"),
            ("Tests/CortexRuntimeTests/Fixtures/poisson.json", "Tests/CortexRuntimeTests/Fixtures/poisson.expected.json"),
            ("Tests/CortexRuntimeTests/Fixtures/dart.json", "Tests/CortexRuntimeTests/Fixtures/dart.expected.json"),
        ]
    )
    func parity(model: String, expectedFile: String) throws {
        let data = try Data(contentsOf: URL(fileURLWithPath: Fixture.path(model)))
        let ensemble = try TreeEnsemble(xgboostJSON: data, path: model)
        let expected = try Fixture.expected(expectedFile)
        #expect(ensemble.objectiveName == expected.objective)
        #expect(ensemble.featureNames == expected.feature_names)
        let predictions = ensemble.predict(features: expected.features, rowCount: expected.rows.count)
        #expect(predictions.count == expected.predictions.count)
        var worst: Float = 0
        for (got, want) in zip(predictions, expected.predictions) {
            worst = max(worst, abs(got - want))
        }
        #expect(worst <= 1e-6, "largest difference \(worst)")
    }

    @Test("the lead-scoring fixture exercises missing values")
    func fixtureHasMissingValues() throws {
        let expected = try Fixture.expected("models/lead-scoring/expected.json")
        #expect(expected.rows.count == 1000)
        #expect(expected.rows.contains { $0.contains { $0 == nil } })
    }

    @Test("a missing value takes the node's default direction")
    func defaultDirection() throws {
        let model = Self.stump(defaultLeft: 1)
        let ensemble = try TreeEnsemble(xgboostJSON: Data(model.utf8), path: "stump.json")
        #expect(ensemble.predict(features: [.nan], rowCount: 1) == [-1.5])
        #expect(ensemble.predict(features: [0.2], rowCount: 1) == [-1.5])
        #expect(ensemble.predict(features: [0.5], rowCount: 1) == [2.5], "equal to the threshold goes right")
        let right = try TreeEnsemble(xgboostJSON: Data(Self.stump(defaultLeft: 0).utf8), path: "stump.json")
        #expect(right.predict(features: [.nan], rowCount: 1) == [2.5])
    }

    /// A one-split regression tree: feature 0 < 0.5 → -2, else 2, base score 0.5.
    static func stump(defaultLeft: Int, objective: String = "reg:squarederror", splitFeature: Int = 0, numNodes: String = "3")
        -> String
    {
        """
        {"learner":{"feature_names":["x"],"gradient_booster":{"name":"gbtree","model":{"tree_info":[0],"trees":[
        {"left_children":[1,-1,-1],"right_children":[2,-1,-1],"split_indices":[\(splitFeature),0,0],
         "split_conditions":[0.5,-2.0,2.0],"default_left":[\(defaultLeft),0,0],"split_type":[0,0,0],
         "tree_param":{"num_nodes":"\(numNodes)","size_leaf_vector":"1"}}]}},
        "learner_model_param":{"base_score":"5E-1","num_class":"0","num_feature":"1","num_target":"1"},
        "objective":{"name":"\(objective)"}},"version":[3,2,0]}
        """
    }
}

@Suite("XGBoost JSON errors name the file and the field")
struct TreeEnsembleErrorTests {
    @Test(
        arguments: [
            (TreeEnsembleParityTests.stump(defaultLeft: 0, objective: "rank:pairwise"), "learner.objective.name"),
            (TreeEnsembleParityTests.stump(defaultLeft: 0, splitFeature: 4), "learner.gradient_booster.model.trees[0].split_indices"),
            (TreeEnsembleParityTests.stump(defaultLeft: 0, numNodes: "5"), "learner.gradient_booster.model.trees[0].tree_param.num_nodes"),
            (#"{"learner":{"gradient_booster":{"name":"gbtree"}}}"#, "learner.learner_model_param"),
            (#"{"learner": 3}"#, "learner"),
        ]
    )
    func namedField(json: String, field: String) {
        #expect {
            try TreeEnsemble(xgboostJSON: Data(json.utf8), path: "bad.json")
        } throws: { error in
            guard let error = error as? ModelLoadError else { return false }
            return error.path == "bad.json" && error.field == field
        }
    }

    @Test("text that is not JSON is reported as such")
    func notJSON() {
        #expect(throws: ModelLoadError(path: "bad.json", reason: "not valid JSON")) {
            try TreeEnsemble(xgboostJSON: Data("{not json".utf8), path: "bad.json")
        }
    }
}
