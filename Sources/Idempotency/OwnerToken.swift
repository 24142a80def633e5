import CLibCrypto
import Glibc

/// Random owner tokens for claims.
///
/// The Redis locking pattern ("SET resource my_random_value NX PX …", then
/// delete only if the value still matches) needs a value unique across all
/// clients and all time; a random 128-bit value makes a collision
/// negligible. It also lets an owner recognise its own claim after an
/// ambiguous store timeout, because the record carries the token.
public enum OwnerToken {
    public static let length = 16

    /// 16 bytes from `getrandom(2)` (the kernel CSPRNG, blocking only until
    /// it is first seeded at boot).
    public static func random() -> [UInt8] {
        var token = [UInt8](repeating: 0, count: length)
        token.withUnsafeMutableBytes { buffer in
            var filled = 0
            while filled < buffer.count {
                let n = getrandom(buffer.baseAddress! + filled, buffer.count - filled, 0)
                if n > 0 {
                    filled += n
                } else if n < 0 && errno != EINTR {
                    // getrandom only fails like this on kernels before 3.17
                    // or under a seccomp filter; neither is a supported setup,
                    // and a predictable token would break owner checks.
                    fatalError("getrandom failed: errno \(errno)")
                }
            }
        }
        return token
    }
}
