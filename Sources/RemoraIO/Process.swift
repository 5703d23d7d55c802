import CShims

/// Process-wide set-up every Remora command does before starting threads.
public enum ProcessSetup {
    /// Ignores SIGPIPE, blocks SIGTERM/SIGINT/SIGHUP for every thread created after
    /// this call and returns a signalfd to read them on one loop.
    public static func signals() -> Int32 { remora_signals_setup() }

    /// Reads the next pending signal from the signalfd (0 if none).
    public static func readSignal(_ fd: Int32) -> Int32 { remora_signal_read(fd) }

    /// Raises the open-file limit to its hard limit; returns the new limit.
    @discardableResult public static func raiseFileLimit() -> Int { Int(remora_raise_nofile()) }
}
