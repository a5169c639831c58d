namespace MaeMl.Training;

/// <summary>A one-line progress bar (loss, lr, images/s, ETA) on a terminal; periodic plain lines when output is redirected.</summary>
public sealed class ConsoleProgress(TextWriter? output = null, TimeSpan? redirectedInterval = null)
{
    readonly TextWriter output = output ?? Console.Out;
    readonly bool interactive = output is null && !Console.IsOutputRedirected;
    readonly TimeSpan interval = redirectedInterval ?? TimeSpan.FromSeconds(10);
    DateTime lastLine = DateTime.MinValue;

    public void Report(int epoch, int epochs, int step, int steps, double loss, double lr, double imagesPerSecond, TimeSpan eta)
    {
        double frac = steps == 0 ? 1 : (double)step / steps;
        var text = $"epoch {epoch + 1}/{epochs} {Bar(frac)} {step}/{steps} loss {loss:F4} lr {lr:E2} {imagesPerSecond:F0} img/s ETA {Format(eta)}";
        if (interactive) { output.Write("\r" + text.PadRight(Math.Max(0, Console.WindowWidth - 1))); }
        else if (DateTime.UtcNow - lastLine >= interval || step == steps) { output.WriteLine(text); lastLine = DateTime.UtcNow; }
    }

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

    public static string Format(TimeSpan t) => t.TotalHours >= 1 ? $"{(int)t.TotalHours}:{t.Minutes:D2}:{t.Seconds:D2}" : $"{t.Minutes:D2}:{t.Seconds:D2}";
}
