using System.Runtime.InteropServices;

namespace MaeMl.Cli;

/// <summary>
/// SIGINT (Ctrl+C) and SIGTERM as a clean stop for a training command, held for the command's run: the first signal cancels
/// <see cref="Token"/>, and the training loop stops at the next accumulation boundary (a fine-tune after its epoch's evaluation)
/// with checkpoint-last written, so <c>--resume auto</c> continues the same schedule; a second signal ends the process at once.
/// <see cref="Program.Main"/> turns the cancellation into one line and exit code 128 + the signal's number (130, 143).
/// </summary>
sealed class StopOnSignal : IDisposable
{
    readonly CancellationTokenSource cts = new();
    readonly PosixSignalRegistration[] registrations;

    /// <summary>The exit code of a command stopped by a signal: 130 after SIGINT, 143 after SIGTERM.</summary>
    public static int ExitCode { get; private set; } = 130;

    /// <summary>Cancelled by the first signal.</summary>
    public CancellationToken Token => cts.Token;

    public StopOnSignal() =>
        registrations = [PosixSignalRegistration.Create(PosixSignal.SIGINT, Handle), PosixSignalRegistration.Create(PosixSignal.SIGTERM, Handle)];

    void Handle(PosixSignalContext context)
    {
        if (cts.IsCancellationRequested) return;   // the second signal: its default action ends the process now
        context.Cancel = true;
        bool interrupt = context.Signal == PosixSignal.SIGINT;
        ExitCode = interrupt ? 130 : 143;
        Console.Error.WriteLine($"maeml: {(interrupt ? "SIGINT" : "SIGTERM")} received: stopping at the next step with checkpoint-last written " +
                                "(a second signal quits at once, losing the steps since the last checkpoint)");
        cts.Cancel();
    }

    public void Dispose()
    {
        foreach (var r in registrations) r.Dispose();
        cts.Dispose();
    }
}
