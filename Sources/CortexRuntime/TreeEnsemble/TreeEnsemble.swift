public import Foundation

/// A gradient-boosted tree ensemble compiled from XGBoost's JSON format into flat node arrays.
///
/// Prediction follows XGBoost exactly: features are read as `Float`, a missing value (NaN)
/// takes the node's default direction, `value < threshold` goes left, and leaf values are
/// summed per output group in tree order on top of the base margin.
///
/// ```swift
/// let ensemble = try TreeEnsemble(xgboostJSON: data, path: "model.json")
/// let probabilities = ensemble.predict(rows: [[0.5, .nan, 3]])
/// ```
public struct TreeEnsemble: Sendable {
    struct Node: Sendable {
        /// Absolute index of the left child, or -1 for a leaf.
        var left: Int32
        /// Absolute index of the right child.
        var right: Int32
        /// Feature column tested by a split.
        var feature: Int32
        /// Whether a missing value goes left.
        var defaultLeft: Bool
        /// Split threshold for a split node, leaf value for a leaf.
        var value: Float
    }

    private var nodes: [Node]
    private var roots: [Int]
    private var treeGroups: [Int]
    private var treeWeights: [Float]?
    private var baseMargins: [Float]
    private let objective: TreeObjective

    /// The XGBoost objective name, e.g. `binary:logistic`.
    public let objectiveName: String
    /// Number of feature columns a row must have.
    public let featureCount: Int
    /// Feature names from the model, or `f0`, `f1`, ... when it has none.
    public let featureNames: [String]
    /// Number of margins per row: classes for multi-class models, else 1.
    public let groupCount: Int
    /// Number of trees.
    public var treeCount: Int { roots.count }
    /// Number of values each row's prediction has: classes for `multi:softprob`, else 1.
    public var outputWidth: Int { objective == .softprob ? groupCount : 1 }

    /// Parses and compiles an XGBoost JSON model.
    ///
    /// - Parameters:
    ///   - data: The contents of the JSON file.
    ///   - path: The file's path, used in error messages.
    /// - Throws: ``ModelLoadError`` naming the file and the field at fault.
    public init(xgboostJSON data: Data, path: String) throws {
        let model: XGBoostJSONModel
        do {
            model = try JSONDecoder().decode(XGBoostJSONModel.self, from: data)
        } catch let error as DecodingError {
            throw Self.loadError(from: error, path: path)
        }
        try self.init(model: model, path: path)
    }

    private init(model: XGBoostJSONModel, path: String) throws {
        let learner = model.learner
        func fail(_ field: String, _ reason: String) -> ModelLoadError {
            ModelLoadError(path: path, field: field, reason: reason)
        }

        guard let (objective, baseMarginKind) = TreeObjective.supported[learner.objective.name] else {
            throw fail(
                "learner.objective.name",
                "objective '\(learner.objective.name)' is not supported; supported: \(TreeObjective.supported.keys.sorted().joined(separator: ", "))"
            )
        }
        self.objective = objective
        self.objectiveName = learner.objective.name

        let params = learner.learner_model_param
        guard let featureCount = Int(params.num_feature), featureCount > 0 else {
            throw fail("learner.learner_model_param.num_feature", "expected a positive integer, got '\(params.num_feature)'")
        }
        self.featureCount = featureCount
        if let target = params.num_target, let targets = Int(target), targets > 1 {
            throw fail("learner.learner_model_param.num_target", "multi-target models (\(targets) targets) are not supported")
        }
        let classCount = Int(params.num_class ?? "0") ?? -1
        guard classCount >= 0 else {
            throw fail("learner.learner_model_param.num_class", "expected an integer, got '\(params.num_class ?? "")'")
        }
        let groupCount = max(classCount, 1)
        self.groupCount = groupCount
        if objective == .softprob || objective == .softmax, classCount < 2 {
            throw fail("learner.learner_model_param.num_class", "\(learner.objective.name) needs num_class >= 2")
        }

        // XGBoost >= 3.1 writes base_score as a vector ("[5E-1]"), one intercept per output group
        // for multi-class models; earlier versions as one scalar.
        let baseText = params.base_score.trimmingCharacters(in: CharacterSet(charactersIn: "[] "))
        let baseScores = baseText.split(separator: ",").map { Float($0.trimmingCharacters(in: .whitespaces)) }
        guard !baseScores.isEmpty, baseScores.count == 1 || baseScores.count == groupCount,
            let scores = baseScores as? [Float]
        else {
            throw fail(
                "learner.learner_model_param.base_score",
                "expected 1 or \(groupCount) numbers, got '\(params.base_score)'"
            )
        }
        for score in scores {
            if baseMarginKind == .logit, !(score > 0 && score < 1) {
                throw fail("learner.learner_model_param.base_score", "must be in (0, 1) for \(learner.objective.name), got \(score)")
            }
            if baseMarginKind == .log, !(score > 0) {
                throw fail("learner.learner_model_param.base_score", "must be positive for \(learner.objective.name), got \(score)")
            }
        }
        let margins = scores.map { baseMarginKind.margin($0) }
        self.baseMargins = margins.count == groupCount ? margins : Array(repeating: margins[0], count: groupCount)

        let booster = learner.gradient_booster
        let treeModel: XGBoostJSONModel.GBTreeModel
        let boosterField: String
        switch booster.name {
        case "gbtree":
            guard let model = booster.model else {
                throw fail("learner.gradient_booster.model", "missing")
            }
            treeModel = model
            boosterField = "learner.gradient_booster.model"
            self.treeWeights = nil
        case "dart":
            guard let nested = booster.gbtree, let weights = booster.weight_drop else {
                throw fail("learner.gradient_booster.gbtree", "a dart booster needs gbtree and weight_drop")
            }
            treeModel = nested.model
            boosterField = "learner.gradient_booster.gbtree.model"
            guard weights.count == nested.model.trees.count else {
                throw fail("learner.gradient_booster.weight_drop", "has \(weights.count) weights for \(nested.model.trees.count) trees")
            }
            self.treeWeights = weights
        default:
            throw fail("learner.gradient_booster.name", "booster '\(booster.name)' is not supported; use gbtree or dart")
        }

        guard treeModel.tree_info.count == treeModel.trees.count else {
            throw fail("\(boosterField).tree_info", "has \(treeModel.tree_info.count) entries for \(treeModel.trees.count) trees")
        }
        if let bad = treeModel.tree_info.first(where: { $0 < 0 || $0 >= groupCount }) {
            throw fail("\(boosterField).tree_info", "group \(bad) is outside 0..<\(groupCount)")
        }
        self.treeGroups = treeModel.tree_info

        var nodes: [Node] = []
        var roots: [Int] = []
        for (treeIndex, tree) in treeModel.trees.enumerated() {
            let field = "\(boosterField).trees[\(treeIndex)]"
            let count = tree.left_children.count
            guard count > 0, Int(tree.tree_param.num_nodes) == count else {
                throw fail("\(field).tree_param.num_nodes", "says \(tree.tree_param.num_nodes) but left_children has \(count) entries")
            }
            if let leafSize = tree.tree_param.size_leaf_vector.flatMap(Int.init), leafSize > 1 {
                throw fail("\(field).tree_param.size_leaf_vector", "vector leaves (\(leafSize)) are not supported")
            }
            for (name, length) in [
                ("right_children", tree.right_children.count), ("split_indices", tree.split_indices.count),
                ("split_conditions", tree.split_conditions.count), ("default_left", tree.default_left.values.count),
            ] where length != count {
                throw fail("\(field).\(name)", "has \(length) entries; expected \(count)")
            }
            if let types = tree.split_type, types.contains(where: { $0 != 0 }) {
                throw fail("\(field).split_type", "categorical splits are not supported")
            }
            let offset = nodes.count
            roots.append(offset)
            for index in 0..<count {
                let left = tree.left_children[index]
                let right = tree.right_children[index]
                let isLeaf = left == -1
                if !isLeaf {
                    guard left > 0, left < count, right > 0, right < count else {
                        throw fail("\(field).left_children", "node \(index) has children \(left), \(right) outside 1..<\(count)")
                    }
                    // XGBoost stores children after their parent; this also rules out cycles.
                    guard left > index, right > index else {
                        throw fail("\(field).left_children", "node \(index) points back to an earlier node")
                    }
                    guard tree.split_indices[index] >= 0, Int(tree.split_indices[index]) < featureCount else {
                        throw fail(
                            "\(field).split_indices",
                            "node \(index) splits on feature \(tree.split_indices[index]); the model has \(featureCount) features"
                        )
                    }
                }
                nodes.append(
                    Node(
                        left: isLeaf ? -1 : Int32(offset) + left,
                        right: isLeaf ? -1 : Int32(offset) + right,
                        feature: isLeaf ? 0 : tree.split_indices[index],
                        defaultLeft: tree.default_left.values[index],
                        value: tree.split_conditions[index]
                    )
                )
            }
        }
        self.nodes = nodes
        self.roots = roots

        if let names = learner.feature_names, !names.isEmpty {
            guard names.count == featureCount else {
                throw fail("learner.feature_names", "has \(names.count) names for \(featureCount) features")
            }
            self.featureNames = names
        } else {
            self.featureNames = (0..<featureCount).map { "f\($0)" }
        }
    }

    /// Predicts a row-major matrix of `rowCount × featureCount` features; NaN marks a missing value.
    ///
    /// - Returns: `rowCount × outputWidth` predictions, row-major.
    public func predict(features: [Float], rowCount: Int) -> [Float] {
        precondition(features.count == rowCount * featureCount, "feature matrix does not match rowCount × featureCount")
        var output: [Float] = []
        output.reserveCapacity(rowCount * outputWidth)
        var margins = [Float](repeating: 0, count: groupCount)
        features.withUnsafeBufferPointer { features in
            nodes.withUnsafeBufferPointer { nodes in
                for row in 0..<rowCount {
                    let rowStart = row * featureCount
                    for group in 0..<groupCount {
                        margins[group] = baseMargins[group]
                    }
                    for (treeIndex, root) in roots.enumerated() {
                        var index = root
                        while true {
                            let node = nodes[index]
                            if node.left < 0 { break }
                            let value = features[rowStart + Int(node.feature)]
                            let goLeft = value.isNaN ? node.defaultLeft : value < node.value
                            index = Int(goLeft ? node.left : node.right)
                        }
                        let leaf = nodes[index].value
                        margins[treeGroups[treeIndex]] += treeWeights.map { leaf * $0[treeIndex] } ?? leaf
                    }
                    var transformed = margins
                    objective.transform(&transformed)
                    output.append(contentsOf: transformed)
                }
            }
        }
        return output
    }

    private static func loadError(from error: DecodingError, path: String) -> ModelLoadError {
        func fieldPath(_ codingPath: [any CodingKey]) -> String {
            var text = ""
            for key in codingPath {
                if let index = key.intValue {
                    text += "[\(index)]"
                } else {
                    text += text.isEmpty ? key.stringValue : ".\(key.stringValue)"
                }
            }
            return text
        }
        switch error {
        case .keyNotFound(let key, let context):
            let parent = fieldPath(context.codingPath)
            return ModelLoadError(path: path, field: parent.isEmpty ? key.stringValue : "\(parent).\(key.stringValue)", reason: "missing")
        case .typeMismatch(let type, let context):
            return ModelLoadError(path: path, field: fieldPath(context.codingPath), reason: "expected \(type)")
        case .valueNotFound(let type, let context):
            return ModelLoadError(path: path, field: fieldPath(context.codingPath), reason: "expected \(type), found null")
        case .dataCorrupted(let context):
            let field = fieldPath(context.codingPath)
            return ModelLoadError(
                path: path,
                field: field.isEmpty ? nil : field,
                reason: field.isEmpty ? "not valid JSON" : "invalid value: \(context.debugDescription)"
            )
        @unknown default:
            return ModelLoadError(path: path, reason: "not a valid XGBoost JSON model")
        }
    }
}
