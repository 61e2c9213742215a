import Testing

@testable import CortexCore

@Suite("Tensor specifications")
struct TensorSpecTests {
    let spec = TensorSpec(name: "x", datatype: .fp32, shape: TensorShape([-1, 3]))

    @Test("dynamic dimensions accept any size; fixed ones must match")
    func shapes() {
        #expect(TensorShape([-1, 3]).accepts(TensorShape([7, 3])))
        #expect(!TensorShape([-1, 3]).accepts(TensorShape([7, 4])))
        #expect(!TensorShape([-1, 3]).accepts(TensorShape([21])))
        #expect(TensorShape([2, 3]).elementCount == 6)
        #expect(TensorShape([-1, 3]).elementCount == nil)
        #expect(TensorShape([Int.max, 3]).elementCount == nil)
        #expect(TensorShape([0, 3]).elementCount == 0)
    }

    @Test("a matching tensor passes")
    func valid() throws {
        try spec.validate(Tensor(name: "x", datatype: .fp32, shape: TensorShape([2, 3]), data: .float([1, 2, 3, 4, 5, 6])))
    }

    @Test(
        "mismatches are rejected with what was expected",
        arguments: [
            (Tensor(name: "x", datatype: .fp64, shape: TensorShape([1, 3]), data: .float([1, 2, 3])), "FP32"),
            (Tensor(name: "x", datatype: .fp32, shape: TensorShape([1, 2]), data: .float([1, 2])), "[-1, 3]"),
            (Tensor(name: "x", datatype: .fp32, shape: TensorShape([2, 3]), data: .float([1, 2, 3])), "3 elements"),
            (Tensor(name: "x", datatype: .fp32, shape: TensorShape([1, 3]), data: .float([1, .nan, 3])), "missing"),
            (Tensor(name: "x", datatype: .fp32, shape: TensorShape([1, 3]), data: .float([1, 1e300, 3])), "FP32"),
            (Tensor(name: "x", datatype: .fp32, shape: TensorShape([1, 3]), data: .int([1, 2, 3])), "not FP32"),
        ]
    )
    func invalid(tensor: Tensor, mentions: String) {
        #expect {
            try spec.validate(tensor)
        } throws: { error in
            guard let error = error as? APIError else { return false }
            return error.status == 400 && error.code == "invalid_tensor" && error.message.contains(mentions)
        }
    }

    @Test("missing values pass only where the signature allows them")
    func missingAllowed() throws {
        let lenient = TensorSpec(name: "x", datatype: .fp32, shape: TensorShape([-1, 3]), allowsMissingValues: true)
        try lenient.validate(Tensor(name: "x", datatype: .fp32, shape: TensorShape([1, 3]), data: .float([1, .nan, 3])))
    }

    @Test("integers must fit their width")
    func integerRange() {
        let bytes = TensorSpec(name: "b", datatype: .uint8, shape: TensorShape([-1]))
        #expect(throws: APIError.self) {
            try bytes.validate(Tensor(name: "b", datatype: .uint8, shape: TensorShape([2]), data: .int([1, 256])))
        }
        #expect(throws: APIError.self) {
            try bytes.validate(Tensor(name: "b", datatype: .uint8, shape: TensorShape([1]), data: .int([-1])))
        }
    }
}
