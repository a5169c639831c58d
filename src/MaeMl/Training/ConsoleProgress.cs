namespace MaeMl.Training;

/// <summary>A one-line progress bar (loss, lr, images/s, ETA) on a terminal; periodic plain lines when output is redirected.</summary>
/// <param name="output">Where to write; null for standard output, with the in-place bar when it is a terminal (a given writer always gets plain lines).</param>
/// <param name="redirectedInterval">Least time between plain progress lines (default 10 s).</param>
public sealed class ConsoleProgress(TextWriter? output = null, TimeSpan? redirectedInterval = null)
{
    readonly TextWriter output = output ?? Console.Out;
    readonly bool interactive = output is null && !Console.IsOutputRedirected;
    readonly TimeSpan interval = redirectedInterval ?? TimeSpan.FromSeconds(10);
    DateTime lastLine = DateTime.MinValue;

    /// <summary>Shows the progress of <paramref name="epoch"/> (0-based, shown 1-based) of <paramref name="epochs"/>:
    /// <paramref name="step"/> of <paramref name="steps"/> batches done, mean <paramref name="loss"/>, current <paramref name="lr"/>,
    /// throughput and <paramref name="eta"/>. On a terminal the bar is redrawn in place; otherwise a line is written at most every
    /// interval (default 10 s) and at the epoch's last step.</summary>
    public void Report(int epoch, int epochs, int step, int steps, double loss, double lr, double imagesPerSecond, TimeSpan eta)
    {
        double frac = steps == 0 ? 1 : (double)step / steps;
        var text = $"epoch {epoch + 1}/{epochs} {Bar(frac)} {step}/{steps} loss {loss:F4} lr {lr:E2} {imagesPerSecond:F0} img/s ETA {Format(eta)}";
        if (interactive) { output.Write("\r" + text.PadRight(Math.Max(0, Console.WindowWidth - 1))); }
        else if (DateTime.UtcNow - lastLine >= interval || step == steps) { output.WriteLine(text); lastLine = DateTime.UtcNow; }
    }

    /// <summary>Writes <paramref name="text"/> as a whole line, first clearing the bar on a terminal.</summary>
    public void Line(string text)
    {
        if (interactive) output.Write("\r" + new string(' ', Math.Max(0, Console.WindowWidth - 1)) + "\r");
        output.WriteLine(text);
    }

    static string Bar(double frac)
    {
        int filled = (int)Math.Round(Math.Clamp(frac, 0, 1) * 20);
        return "[" + new string('#', filled) + new string('.', 20 - filled) + "]";
    }

    /// <summary>A duration as <c>h:mm:ss</c> from one hour on, else <c>mm:ss</c>.</summary>
    public static string Format(TimeSpan t) => t.TotalHours >= 1 ? $"{(int)t.TotalHours}:{t.Minutes:D2}:{t.Seconds:D2}" : $"{t.Minutes:D2}:{t.Seconds:D2}";
}
