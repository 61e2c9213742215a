/// The parts of XGBoost's JSON model format (`Booster.save_model("x.json")`) that prediction needs.
///
/// XGBoost writes most scalar parameters as strings; they are parsed in ``TreeEnsemble``.
struct XGBoostJSONModel: Decodable {
    struct Learner: Decodable {
        var feature_names: [String]?
        var feature_types: [String]?
        var gradient_booster: GradientBooster
        var learner_model_param: LearnerModelParam
        var objective: Objective
    }

    struct LearnerModelParam: Decodable {
        var base_score: String
        var num_class: String?
        var num_feature: String
        var num_target: String?
    }

    struct Objective: Decodable {
        var name: String
    }

    struct GradientBooster: Decodable {
        var name: String
        var model: GBTreeModel?
        /// The nested booster of `dart`.
        var gbtree: Nested?
        var weight_drop: [Float]?
    }

    /// Breaks the recursion of `dart`'s `gbtree` field.
    struct Nested: Decodable {
        var model: GBTreeModel
    }

    struct GBTreeModel: Decodable {
        var tree_info: [Int]
        var trees: [Tree]
    }

    struct Tree: Decodable {
        var left_children: [Int32]
        var right_children: [Int32]
        var split_indices: [Int32]
        var split_conditions: [Float]
        var default_left: Flags
        var split_type: [Int]?
        var tree_param: TreeParam
    }

    struct TreeParam: Decodable {
        var num_nodes: String
        var size_leaf_vector: String?
    }

    /// `default_left` is written as 0/1 integers by current XGBoost and as booleans by some tools.
    struct Flags: Decodable {
        var values: [Bool]

        init(from decoder: any Decoder) throws {
            let container = try decoder.singleValueContainer()
            if let ints = try? container.decode([Int].self) {
                values = ints.map { $0 != 0 }
            } else {
                values = try container.decode([Bool].self)
            }
        }
    }

    var learner: Learner
    var version: [Int]?
}
