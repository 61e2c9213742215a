public import CortexCore

extension ImagePreprocessing {
    /// Resizes `image` to `height`×`width` and normalises it into the model's input:
    /// FP32 `[1, C, height, width]` of `(pixel * scale - mean[c]) / std[c]`.
    public func tensor(from image: DecodedImage, height: Int, width: Int, name: String) -> Tensor {
        let resized = Self.resize(image, height: height, width: width)
        let channels = image.channels
        var values = [Double](repeating: 0, count: channels * height * width)
        for c in 0..<channels {
            let (mean, std) = (self.mean[c], self.std[c])
            for index in 0..<height * width {
                values[c * height * width + index] = Double(Float((resized[index * channels + c] * scale - mean) / std))
            }
        }
        return Tensor(name: name, datatype: .fp32, shape: TensorShape([1, channels, height, width]), data: .float(values))
    }

    /// Resamples with a triangle filter stretched over the scale factor when shrinking (as
    /// Pillow's and ONNX's antialiased bilinear do), plain bilinear when growing, and exactly
    /// when the size stays. Pixels stay in 0...255, channels interleaved.
    static func resize(_ image: DecodedImage, height: Int, width: Int) -> [Double] {
        let channels = image.channels
        let columns = weights(from: image.width, to: width)
        let rows = weights(from: image.height, to: height)
        // Horizontal pass: image.height × width.
        var horizontal = [Double](repeating: 0, count: image.height * width * channels)
        for y in 0..<image.height {
            for x in 0..<width {
                for (source, weight) in columns[x] {
                    for c in 0..<channels {
                        horizontal[(y * width + x) * channels + c] +=
                            weight * Double(image.pixels[(y * image.width + source) * channels + c])
                    }
                }
            }
        }
        // Vertical pass: height × width.
        var output = [Double](repeating: 0, count: height * width * channels)
        for y in 0..<height {
            for (source, weight) in rows[y] {
                for x in 0..<width {
                    for c in 0..<channels {
                        output[(y * width + x) * channels + c] += weight * horizontal[(source * width + x) * channels + c]
                    }
                }
            }
        }
        return output
    }

    /// For each output position, the input positions it reads and their normalised weights.
    private static func weights(from input: Int, to output: Int) -> [[(Int, Double)]] {
        let scale = Double(input) / Double(output)
        let support = max(scale, 1)
        return (0..<output).map { position in
            let center = (Double(position) + 0.5) * scale
            let first = max(0, Int((center - support).rounded(.down)))
            let last = min(input - 1, Int((center + support).rounded(.up)))
            var taps: [(Int, Double)] = []
            var total = 0.0
            for source in first...max(first, last) {
                let weight = max(0, 1 - abs(Double(source) + 0.5 - center) / support)
                if weight > 0 {
                    taps.append((source, weight))
                    total += weight
                }
            }
            if taps.isEmpty { return [(min(max(Int(center), 0), input - 1), 1)] }
            return taps.map { ($0.0, $0.1 / total) }
        }
    }
}
