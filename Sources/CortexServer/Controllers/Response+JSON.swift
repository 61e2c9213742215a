import Hummingbird
import NIOCore

extension Response {
    /// A JSON answer: `text` (already JSON) with its status and content type.
    static func json(_ status: HTTPResponse.Status, _ text: String) -> Response {
        Response(
            status: status,
            headers: [.contentType: "application/json"],
            body: ResponseBody(byteBuffer: ByteBuffer(string: text))
        )
    }
}
