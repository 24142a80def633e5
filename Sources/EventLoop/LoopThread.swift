import CSystemShims
import Glibc

/// Starts a POSIX thread running `body`; used to give each event loop its own thread.
public final class LoopThread: @unchecked Sendable {
    private var thread = pthread_t()
    private let body: () -> Void
    private let name: String

    public init(name: String, _ body: @escaping () -> Void) {
        self.body = body
        self.name = name
        let unmanaged = Unmanaged.passRetained(self)
        pthread_create(&thread, nil, { raw in
            let me = Unmanaged<LoopThread>.fromOpaque(raw!).takeRetainedValue()
            csys_set_thread_name(me.name)
            me.body()
            return nil
        }, unmanaged.toOpaque())
    }

    public func join() {
        pthread_join(thread, nil)
    }

    /// Lets the thread end on its own, unjoined (its resources are freed when it does).
    public func detach() {
        pthread_detach(thread)
    }
}
