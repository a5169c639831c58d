using SkiaSharp;

namespace MaeMl.Tests;

/// <summary>Small synthetic image folders for tests: coloured shapes on gradients, written as PNG or JPEG.</summary>
public static class TestImages
{
    public static string TempDir(string prefix)
    {
        var dir = Path.Combine(Path.GetTempPath(), $"maeml-{prefix}-{Guid.NewGuid():N}");
        Directory.CreateDirectory(dir);
        return dir;
    }

    /// <summary>Writes <paramref name="count"/> images of size x size; class c (0..classes-1) draws a different shape and hue.</summary>
    public static List<string> Write(string dir, int count, int size = 32, int classes = 1, int seed = 0, SKEncodedImageFormat format = SKEncodedImageFormat.Png)
    {
        var rng = new Random(seed);
        var paths = new List<string>();
        for (int i = 0; i < count; i++)
        {
            int label = i % classes;
            var classDir = classes > 1 ? Path.Combine(dir, $"class{label}") : dir;
            Directory.CreateDirectory(classDir);
            using var bitmap = Draw(size, label, rng);
            var ext = format == SKEncodedImageFormat.Jpeg ? "jpg" : "png";
            var path = Path.Combine(classDir, $"img{i:D4}.{ext}");
            using var image = SKImage.FromBitmap(bitmap);
            using var data = image.Encode(format, 90);
            File.WriteAllBytes(path, data.ToArray());
            paths.Add(path);
        }
        return paths;
    }

    public static SKBitmap Draw(int size, int label, Random rng)
    {
        var bitmap = new SKBitmap(size, size, SKColorType.Rgba8888, SKAlphaType.Premul);
        using var canvas = new SKCanvas(bitmap);
        var hue = (label * 97 + rng.Next(20)) % 360;
        using var bg = new SKPaint { Shader = SKShader.CreateLinearGradient(new SKPoint(0, 0), new SKPoint(size, size),
            new[] { SKColor.FromHsv(hue, 40, 90), SKColor.FromHsv((hue + 60) % 360, 60, 40) }, SKShaderTileMode.Clamp) };
        canvas.DrawRect(0, 0, size, size, bg);
        using var fg = new SKPaint { Color = SKColor.FromHsv((hue + 180) % 360, 80, 95), IsAntialias = true };
        float cx = size * (0.3f + 0.4f * (float)rng.NextDouble()), cy = size * (0.3f + 0.4f * (float)rng.NextDouble()), r = size * 0.2f;
        if (label % 2 == 0) canvas.DrawCircle(cx, cy, r, fg); else canvas.DrawRect(cx - r, cy - r, 2 * r, 2 * r, fg);
        canvas.Flush();
        return bitmap;
    }
}
