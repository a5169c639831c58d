using SkiaSharp;
using MaeMl.Files;

namespace MaeMl.Visualization;

/// <summary>A typeface for labels: DejaVu Sans (or another common TTF) when installed, else Skia's default.</summary>
internal static class PlotFont
{
    static readonly Lazy<SKTypeface> typeface = new(() =>
    {
        string[] candidates =
        {
            "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf", "/usr/share/fonts/TTF/DejaVuSans.ttf",
            "/usr/share/fonts/dejavu/DejaVuSans.ttf", "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
            "C:/Windows/Fonts/arial.ttf", "/System/Library/Fonts/Supplemental/Arial.ttf", "/Library/Fonts/Arial.ttf",
        };
        foreach (var path in candidates)
            if (File.Exists(path) && SKTypeface.FromFile(path) is { } face) return face;
        return SKTypeface.Default;
    });

    /// <summary>A new antialiased text paint of <paramref name="size"/> pixels in <see cref="PlotFont"/>'s typeface, black unless
    /// <paramref name="color"/> is given (the caller disposes it).</summary>
    public static SKPaint Text(float size, SKColor? color = null) => new()
    {
        Typeface = typeface.Value, TextSize = size, IsAntialias = true, Color = color ?? SKColors.Black,
    };

    /// <summary>Encodes a bitmap as PNG, atomically.</summary>
    public static void SavePng(SKBitmap bitmap, string path)
    {
        using var image = SKImage.FromBitmap(bitmap);
        using var data = image.Encode(SKEncodedImageFormat.Png, 100);
        AtomicFile.Write(path, s => data.SaveTo(s));
    }
}
