public import CortexCore
import Foundation

/// A tabular model's rows as cloud endpoints take them (CSV for SageMaker's XGBoost, a pandas
/// `split` frame for Azure ML's MLflow models) and their answers read back: one prediction per
/// row, or one list per row for a model with several outputs per row (`multi:softprob`).
///
/// Only a model with one `[rows, features]` input and one numeric `[rows]` or `[rows, k]` output
/// can be served this way; ``check(_:)`` says why another cannot, at start-up.
package enum TabularRows {
    /// Why `metadata` cannot be sent as rows, or `nil` when it can.
    package static func check(_ metadata: ModelMetadata) -> String? {
        guard metadata.inputs.count == 1, let input = metadata.inputs.first, input.shape.dimensions.count == 2,
            input.datatype.isFloatingPoint || input.datatype.isInteger
        else { return "it needs one numeric [rows, features] input (a tabular model); '\(metadata.name)' has another signature" }
        guard metadata.outputs.count == 1, let output = metadata.outputs.first, (1...2).contains(output.shape.dimensions.count),
            output.datatype != .bytes
        else { return "it needs one numeric [rows] or [rows, k] output; '\(metadata.name)' has another" }
        return nil
    }

    /// Values per row of the model's one output.
    static func width(of metadata: ModelMetadata) -> Int {
        let dimensions = metadata.outputs.first?.shape.dimensions ?? []
        return dimensions.count == 2 ? max(1, dimensions[1]) : 1
    }

    /// The one input's rows: how many, how wide, and the values row by row (`NaN` is missing).
    static func rows(_ inputs: [Tensor]) throws -> (count: Int, width: Int, values: [Double]) {
        guard let input = inputs.first, input.shape.dimensions.count == 2 else {
            throw RemoteModel.Failure(description: "the request is not one [rows, features] tensor")
        }
        let values: [Double]
        switch input.data {
        case .float(let floats): values = floats
        case .int(let ints): values = ints.map(Double.init)
        case .bool(let flags): values = flags.map { $0 ? 1 : 0 }
        case .bytes: throw RemoteModel.Failure(description: "BYTES inputs cannot be sent as rows")
        }
        return (input.shape.dimensions[0], input.shape.dimensions[1], values)
    }

    /// `1.5,,3\n0,2,1\n`: a row per line, no header, a missing value as an empty field (how
    /// XGBoost reads CSV).
    package static func csv(_ inputs: [Tensor]) throws -> String {
        let (count, width, values) = try rows(inputs)
        var text = ""
        text.reserveCapacity(values.count * 8)
        for row in 0..<count {
            for column in 0..<width {
                if column > 0 { text += "," }
                let value = values[row * width + column]
                if !value.isNaN { text += number(value) }
            }
            text += "\n"
        }
        return text
    }

    /// `{"input_data": {"columns": [...], "index": [0, ...], "data": [[...], ...]}}`: the pandas
    /// `split` frame Azure ML's MLflow deployments take, a missing value as `null`. Columns are
    /// the model's feature names, or `0`, `1`, ... when it has none.
    package static func splitFrame(_ inputs: [Tensor], columns names: [String]) throws -> String {
        let (count, width, values) = try rows(inputs)
        let columns = names.count == width ? names : (0..<width).map(String.init)
        var json = JSONWriter(capacity: 64 + values.count * 8)
        json.beginObject()
        json.key("input_data")
        json.beginObject()
        json.key("columns")
        json.beginArray()
        for column in columns { json.string(column) }
        json.endArray()
        json.key("index")
        json.beginArray()
        for row in 0..<count { json.number(Double(row)) }
        json.endArray()
        json.key("data")
        json.beginArray()
        for row in 0..<count {
            json.beginArray()
            for value in values[(row * width)..<((row + 1) * width)] {
                if value.isNaN { json.null() } else { json.number(value) }
            }
            json.endArray()
        }
        json.endArray()
        json.endObject()
        json.endObject()
        return json.text
    }

    /// The answer's predictions as the model's output tensor, `rows` of them.
    ///
    /// Read as JSON when the body is JSON: a list, or an object's `predictions` list (SageMaker's
    /// JSON, MLflow's), each item a number, a list of numbers, or an object with `score` (SageMaker's
    /// built-in algorithms). Otherwise as CSV: a line per row, or one line of all rows' values
    /// (SageMaker's XGBoost, older versions).
    package static func predictions(_ body: [UInt8], rows: Int, metadata: ModelMetadata) throws -> [Tensor] {
        guard let spec = metadata.outputs.first else { throw RemoteModel.Failure(description: "the model has no output") }
        let width = width(of: metadata)
        var values: [Double] = []
        values.reserveCapacity(rows * width)
        let first = body.first { !($0 == 0x20 || $0 == 0x0A || $0 == 0x0D || $0 == 0x09) }
        if first == UInt8(ascii: "[") || first == UInt8(ascii: "{") {
            let root: JSONValue
            do { root = try JSONParser.parse(body) } catch { throw RemoteModel.Failure(description: "the answer is not JSON") }
            var list = root
            if case .object(let members) = root {
                guard let predictions = members.first(where: { $0.0 == "predictions" })?.1 else {
                    throw RemoteModel.Failure(description: "the answer has no predictions")
                }
                list = predictions
            }
            guard case .array(let items) = list else { throw RemoteModel.Failure(description: "the predictions are not a list") }
            guard items.count == rows else {
                throw RemoteModel.Failure(description: "the answer has \(items.count) predictions for \(rows) rows")
            }
            for item in items { try append(item, width: width, to: &values) }
        } else {
            guard let text = String(validating: body, as: UTF8.self) else {
                throw RemoteModel.Failure(description: "the answer is neither JSON nor CSV")
            }
            let lines = text.split(whereSeparator: \.isNewline).filter { !$0.allSatisfy(\.isWhitespace) }
            // A line per row, or every row's values on one line.
            guard lines.count == rows || lines.count == 1 else {
                throw RemoteModel.Failure(description: "the answer has \(lines.count) lines for \(rows) rows")
            }
            for field in lines.flatMap({ $0.split(separator: ",") }) {
                guard let value = Double(field.trimmingCharacters(in: .whitespaces)) else {
                    throw RemoteModel.Failure(description: "the answer holds '\(field.prefix(40))', not a number")
                }
                values.append(value)
            }
        }
        guard values.count == rows * width else {
            throw RemoteModel.Failure(description: "the answer has \(values.count) values for \(rows) rows of \(width)")
        }
        let shape = spec.shape.dimensions.count == 2 ? TensorShape([rows, width]) : TensorShape([rows])
        let data: TensorData
        if spec.datatype.isInteger {
            guard values.allSatisfy({ $0.rounded() == $0 && abs($0) < 9.2e18 }) else {
                throw RemoteModel.Failure(description: "output '\(spec.name)' is \(spec.datatype.rawValue) but the answer holds fractions")
            }
            data = .int(values.map { Int64($0) })
        } else if spec.datatype == .bool {
            data = .bool(values.map { $0 != 0 })
        } else {
            data = .float(values)
        }
        return [Tensor(name: spec.name, datatype: spec.datatype, shape: shape, data: data)]
    }

    /// One row's prediction: `width` numbers.
    private static func append(_ item: JSONValue, width: Int, to values: inout [Double]) throws {
        switch item {
        case .number(let number) where width == 1: values.append(number)
        case .array(let numbers) where numbers.count == width:
            for number in numbers {
                guard case .number(let value) = number else { throw RemoteModel.Failure(description: "a prediction holds \(number.kind)") }
                values.append(value)
            }
        case .object(let fields):
            guard let score = fields.first(where: { $0.0 == "score" })?.1 else {
                throw RemoteModel.Failure(description: "a prediction has no score")
            }
            try append(score, width: width, to: &values)
        default:
            throw RemoteModel.Failure(description: "a prediction is not \(width == 1 ? "a number" : "\(width) numbers")")
        }
    }

    /// The shortest text that reads back as the same double: `3` for 3.0, `0.1` for 0.1.
    static func number(_ value: Double) -> String {
        value == value.rounded() && abs(value) < 1e15 ? String(Int64(value)) : String(value)
    }
}
