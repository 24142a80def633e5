import Foundation
import Glibc

/// Polls `condition` every 50 ms until it holds or `seconds` pass; true when it held. For
/// what happens in the background (a connection, a failover) and has no event to wait on.
public func eventually(seconds: Double = 5, _ condition: () throws -> Bool) rethrows -> Bool {
    let deadline = Date().addingTimeInterval(seconds)
    while Date() < deadline {
        if try condition() { return true }
        usleep(50_000)
    }
    return try condition()
}
