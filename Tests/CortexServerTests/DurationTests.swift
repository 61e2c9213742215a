import Testing

@testable import CortexServer

@Suite("Duration conversions")
struct DurationTests {
    @Test("fractional and whole seconds both survive the conversion")
    func inSeconds() {
        #expect(Duration.milliseconds(20).inSeconds == 0.02)
        #expect(Duration.seconds(2.5).inSeconds == 2.5)
        #expect(Duration.seconds(3).inSeconds == 3)
    }
}
