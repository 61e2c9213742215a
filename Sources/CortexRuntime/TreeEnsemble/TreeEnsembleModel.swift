public import CortexCore

/// Serves a ``TreeEnsemble`` through the tensor interface.
///
/// Signature: one input `features` (`FP32 [-1, n]`, missing values allowed as `null`)
/// and one output `predictions` (`FP32 [-1]`, or `[-1, classes]` for `multi:softprob`).
public struct TreeEnsembleModel: InferenceModel {
    /// Name of the input tensor.
    public static let inputName = "features"
    /// Name of the output tensor.
    public static let outputName = "predictions"

    /// The compiled ensemble.
    public let ensemble: TreeEnsemble
    public let metadata: ModelMetadata

    /// Wraps an ensemble under a name and version.
    public init(name: String, version: String, ensemble: TreeEnsemble) {
        self.ensemble = ensemble
        let outputShape = ensemble.outputWidth > 1 ? TensorShape([-1, ensemble.outputWidth]) : TensorShape([-1])
        self.metadata = ModelMetadata(
            name: name,
            version: version,
            platform: "xgboost_json",
            inputs: [
                TensorSpec(
                    name: Self.inputName,
                    datatype: .fp32,
                    shape: TensorShape([-1, ensemble.featureCount]),
                    allowsMissingValues: true
                )
            ],
            outputs: [TensorSpec(name: Self.outputName, datatype: .fp32, shape: outputShape)],
            featureNames: ensemble.featureNames,
            properties: [
                "objective": ensemble.objectiveName,
                "num_trees": String(ensemble.treeCount),
                "num_features": String(ensemble.featureCount),
            ]
        )
    }

    public func infer(_ inputs: [Tensor]) throws -> [Tensor] {
        guard let input = inputs.first, case .float(let values) = input.data, input.shape.dimensions.count == 2 else {
            throw APIError.invalidTensor("input '\(Self.inputName)' must be FP32 [rows, \(ensemble.featureCount)]")
        }
        let rows = input.shape.dimensions[0]
        let features = values.map { Float($0) }
        let predictions = ensemble.predict(features: features, rowCount: rows)
        let shape = ensemble.outputWidth > 1 ? TensorShape([rows, ensemble.outputWidth]) : TensorShape([rows])
        return [
            Tensor(
                name: Self.outputName,
                datatype: .fp32,
                shape: shape,
                data: .float(predictions.map { Double($0) })
            )
        ]
    }
}
