using MaeMl.Model;

namespace MaeMl.Cli.Commands;

/// <summary>Small parsers shared by commands.</summary>
public static class CliParsing
{
    /// <summary>"90", "90s", "15m", "2h", "1:30:00" -> TimeSpan.</summary>
    public static TimeSpan? Duration(string? text)
    {
        if (string.IsNullOrWhiteSpace(text)) return null;
        text = text.Trim();
        double Number(string s) => double.TryParse(s, System.Globalization.CultureInfo.InvariantCulture, out var v) && v > 0 ? v
            : throw new CliException($"invalid duration '{text}' (use e.g. 90s, 15m, 2h)");
        if (text.EndsWith('h')) return TimeSpan.FromHours(Number(text[..^1]));
        if (text.EndsWith('m')) return TimeSpan.FromMinutes(Number(text[..^1]));
        if (text.EndsWith('s')) return TimeSpan.FromSeconds(Number(text[..^1]));
        if (text.Contains(':') && TimeSpan.TryParse(text, out var ts)) return ts;
        return TimeSpan.FromSeconds(Number(text));
    }

    /// <summary>--max-image-megapixels as a pixel count.</summary>
    public static long MaxPixels(double megapixels) =>
        megapixels > 0 && megapixels <= 1e6 ? (long)(megapixels * 1e6) : throw new CliException($"--max-image-megapixels must be in (0, 1000000], got {megapixels}");

    /// <summary>A preset by name, with a message listing the known ones.</summary>
    public static MaeConfig Preset(string name)
    {
        try { return MaePresets.Get(name); }
        catch (ArgumentException e) { throw new CliException(e.Message); }
    }
}
