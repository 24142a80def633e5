@testable import HTTP1
import Testing

/// The grammar bit masks are checked against the RFC definitions spelled out
/// as character lists, for every byte value.
@Suite struct ByteClassTests {
    @Test func tcharMaskMatchesRFC9110() {
        let tchar = Set("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ".utf8)
        for b in 0...255 {
            #expect(ByteClass.isTchar(UInt8(b)) == tchar.contains(UInt8(b)), "byte \(b)")
        }
    }

    @Test func hostMaskMatchesRFC3986() {
        let host = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~!$&'()*+,;=:%[]".utf8)
        for b in 0...255 {
            #expect(ByteClass.isHostByte(UInt8(b)) == host.contains(UInt8(b)), "byte \(b)")
        }
    }

    @Test func fieldValueBytesMatchRFC9110() {
        for b in 0...255 {
            let allowed = b == 0x09 || (0x20...0x7E).contains(b) || b >= 0x80
            #expect(ByteClass.isFieldValueByte(UInt8(b)) == allowed, "byte \(b)")
        }
    }

    @Test func swarFindsEveryLowByteAtEveryPosition() {
        for position in 0..<8 {
            for low in [0x00, 0x09, 0x0A, 0x0D, 0x1F] as [UInt8] {
                var word = [UInt8](repeating: 0x41, count: 8)
                word[position] = low
                let x = word.withUnsafeBytes { SWAR.load($0, 0) }
                #expect(SWAR.hasByteLess(than: 0x20, in: x))
                #expect(SWAR.hasByteLess(than: 0x0E, in: x) == (low < 0x0E))
            }
            var word = [UInt8](repeating: 0xFF, count: 8)
            word[position] = 0x7F
            let x = word.withUnsafeBytes { SWAR.load($0, 0) }
            #expect(SWAR.hasByte(0x7F, in: x))
            #expect(!SWAR.hasByteLess(than: 0x20, in: x))
        }
        let clean = [UInt8](repeating: 0x80, count: 8).withUnsafeBytes { SWAR.load($0, 0) }
        #expect(!SWAR.hasByteLess(than: 0x20, in: clean))
        #expect(!SWAR.hasByte(0x7F, in: clean))
    }

    @Test func statusPhrases() {
        #expect(StatusReason.phrase(for: 200) == "OK")
        #expect(StatusReason.phrase(for: 431) == "Request Header Fields Too Large")
        #expect(StatusReason.phrase(for: 599) == "Server Error")
        #expect(StatusReason.phrase(for: 1000) == "Unknown")
    }
}
