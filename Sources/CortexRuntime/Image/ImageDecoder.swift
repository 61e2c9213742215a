import CPNG
import CTurboJPEG
public import CortexCore

/// A decoded image: 8-bit pixels, row-major, channels interleaved (gray: 1, RGB: 3).
public struct DecodedImage: Sendable, Equatable {
    public var width: Int
    public var height: Int
    public var channels: Int
    public var pixels: [UInt8]
}

/// Decodes PNG (libpng) and JPEG (libjpeg-turbo) images, refusing anything else, anything
/// corrupt, and anything whose header claims more pixels than allowed, before decoding it
/// (a decompression bomb costs a header read, not memory).
public struct ImageDecoder: Sendable {
    /// Most pixels (width × height) an image may have.
    public var maxPixels: Int
    /// Most pixels along either side.
    public var maxSide: Int

    /// Creates a decoder with limits.
    public init(maxPixels: Int = 4096 * 4096, maxSide: Int = 16384) {
        self.maxPixels = maxPixels
        self.maxSide = maxSide
    }

    /// Decodes `bytes` into `channels` (1 gray, 3 RGB) per pixel, converting colour as needed.
    ///
    /// - Throws: ``APIError`` 400 `invalid_image` for data that is not a whole PNG or JPEG, 413
    ///   `image_too_large` for an image over the limits.
    public func decode(_ bytes: [UInt8], channels: Int) throws(APIError) -> DecodedImage {
        if bytes.starts(with: [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]) {
            return try decodePNG(bytes, channels: channels)
        }
        if bytes.starts(with: [0xFF, 0xD8, 0xFF]) {
            return try decodeJPEG(bytes, channels: channels)
        }
        throw Self.invalid("the image is neither PNG nor JPEG (its first bytes say otherwise)")
    }

    private func check(width: Int, height: Int) throws(APIError) {
        guard width > 0, height > 0 else { throw Self.invalid("the image has no pixels (\(width)x\(height))") }
        guard width <= maxSide, height <= maxSide, width * height <= maxPixels else {
            throw APIError(
                status: 413,
                code: "image_too_large",
                message: "the image is \(width)x\(height) pixels; at most \(maxPixels) pixels and \(maxSide) per side are accepted"
            )
        }
    }

    private func decodePNG(_ bytes: [UInt8], channels: Int) throws(APIError) -> DecodedImage {
        // libpng's simplified reader stops after the image data, so a file cut after it would pass.
        guard Self.endsWithIEND(bytes) else {
            throw Self.invalid("the PNG is truncated: its chunks end before the IEND chunk that closes every PNG")
        }
        var image = png_image()
        image.version = UInt32(PNG_IMAGE_VERSION)
        let begun = bytes.withUnsafeBytes { png_image_begin_read_from_memory(&image, $0.baseAddress, $0.count) }
        guard begun != 0 else {
            let reason = Self.message(of: &image)
            png_image_free(&image)
            throw Self.invalid("the PNG cannot be read: \(reason)")
        }
        let (width, height) = (Int(image.width), Int(image.height))
        do {
            try check(width: width, height: height)
        } catch {
            png_image_free(&image)
            throw error
        }
        image.format = channels == 1 ? UInt32(PNG_FORMAT_GRAY) : UInt32(PNG_FORMAT_RGB)
        var pixels = [UInt8](repeating: 0, count: width * height * channels)
        let finished = bytes.withUnsafeBytes { _ in
            pixels.withUnsafeMutableBytes { png_image_finish_read(&image, nil, $0.baseAddress, Int32(width * channels), nil) }
        }
        guard finished != 0 else {
            let reason = Self.message(of: &image)
            png_image_free(&image)
            throw Self.invalid("the PNG is corrupt: \(reason)")
        }
        png_image_free(&image)
        return DecodedImage(width: width, height: height, channels: channels, pixels: pixels)
    }

    /// Whether the chunks after the signature run whole, each inside the data, up to an `IEND`
    /// chunk (what follows it is ignored, as decoders do).
    static func endsWithIEND(_ bytes: [UInt8]) -> Bool {
        var offset = 8
        while bytes.count - offset >= 12 {
            let length = bytes[offset..<offset + 4].reduce(0) { $0 << 8 | Int($1) }
            let isEnd = bytes[offset + 4..<offset + 8].elementsEqual("IEND".utf8)
            // Length, type, data, CRC; a length is at most 2^31 - 1, so this cannot overflow.
            guard length <= Int(Int32.max), bytes.count - offset - 12 >= length else { return false }
            if isEnd { return true }
            offset += 12 + length
        }
        return false
    }

    private static func message(of image: inout png_image) -> String {
        withUnsafeBytes(of: &image.message) { raw in
            String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
        }
    }

    private func decodeJPEG(_ bytes: [UInt8], channels: Int) throws(APIError) -> DecodedImage {
        guard let handle = tjInitDecompress() else { throw Self.invalid("the JPEG decoder could not start") }
        defer { tjDestroy(handle) }
        var width: Int32 = 0
        var height: Int32 = 0
        var subsampling: Int32 = 0
        var colorspace: Int32 = 0
        let header = bytes.withUnsafeBufferPointer { buffer in
            tjDecompressHeader3(handle, buffer.baseAddress, UInt(buffer.count), &width, &height, &subsampling, &colorspace)
        }
        guard header == 0 else { throw Self.invalid("the JPEG cannot be read: \(Self.jpegError(handle))") }
        try check(width: Int(width), height: Int(height))
        var pixels = [UInt8](repeating: 0, count: Int(width) * Int(height) * channels)
        let format = channels == 1 ? TJPF_GRAY : TJPF_RGB
        let decoded = bytes.withUnsafeBufferPointer { buffer in
            pixels.withUnsafeMutableBufferPointer { output in
                tjDecompress2(
                    handle, buffer.baseAddress, UInt(buffer.count), output.baseAddress, width, 0, height, Int32(format.rawValue),
                    TJFLAG_NOREALLOC)
            }
        }
        // A warning (a truncated or damaged stream decoded in part) is as bad as an error here.
        guard decoded == 0 else { throw Self.invalid("the JPEG is corrupt: \(Self.jpegError(handle))") }
        return DecodedImage(width: Int(width), height: Int(height), channels: channels, pixels: pixels)
    }

    private static func jpegError(_ handle: tjhandle) -> String {
        tjGetErrorStr2(handle).map { String(cString: $0) } ?? "unknown error"
    }

    static func invalid(_ message: String) -> APIError {
        APIError(status: 400, code: "invalid_image", message: message)
    }
}
