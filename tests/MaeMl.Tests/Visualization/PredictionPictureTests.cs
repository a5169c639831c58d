using MaeMl.Detection;
using MaeMl.Visualization;
using SkiaSharp;
using Xunit;
using Xunit.Abstractions;

namespace MaeMl.Tests.Visualization;

/// <summary>
/// The prediction pictures of detect-eval / segment-eval: a header row over the columns and a legend strip under the rows, the
/// legend listing exactly the classes drawn, each with a swatch of its class colour. Set MAEML_KEEP_PICTURES to a folder to keep
/// the drawn sheets there for a look.
/// </summary>
public sealed class PredictionPictureTests(ITestOutputHelper output) : IDisposable
{
    readonly string dir = TestImages.TempDir("pictures");
    public void Dispose() => Directory.Delete(dir, true);

    const int Size = 32, Scale = 3, Cell = Size * Scale;

    static readonly string[] Names = ["background", "cat", "dog", "bird", "fish"];

    SKBitmap Decode(string path)
    {
        if (Environment.GetEnvironmentVariable("MAEML_KEEP_PICTURES") is { Length: > 0 } keep)
        {
            Directory.CreateDirectory(keep);
            File.Copy(path, Path.Combine(keep, Path.GetFileName(path)), overwrite: true);
        }
        var bitmap = SKBitmap.Decode(path);
        Assert.NotNull(bitmap);
        output.WriteLine($"{Path.GetFileName(path)}: {bitmap.Width}x{bitmap.Height}");
        return bitmap;
    }

    /// <summary>Pixels of exactly <paramref name="color"/> in rows [y0, y1).</summary>
    static int Count(SKBitmap b, SKColor color, int y0, int y1)
    {
        int n = 0;
        for (int y = y0; y < y1; y++)
        for (int x = 0; x < b.Width; x++)
            if (b.GetPixel(x, y) == color) n++;
        return n;
    }

    /// <summary>Dark (text) pixels in a column's part of the header rows.</summary>
    static int Ink(SKBitmap b, int x0, int x1, int y1)
    {
        int n = 0;
        for (int y = 0; y < y1; y++)
        for (int x = x0; x < x1; x++)
        {
            var p = b.GetPixel(x, y);
            if (p.Red + p.Green + p.Blue < 300) n++;
        }
        return n;
    }

    void CheckLegend(SKBitmap sheet, int imagesBottom, int[] shown, int[] absent)
    {
        foreach (var c in shown)
            Assert.True(Count(sheet, DensePredictionPicture.ClassColor(c), imagesBottom, sheet.Height) >= 12 * 12,
                $"the legend has no full swatch of class {c} ({Names[c]}), colour {DensePredictionPicture.ClassColor(c)}");
        foreach (var c in absent)
            Assert.Equal(0, Count(sheet, DensePredictionPicture.ClassColor(c), imagesBottom, sheet.Height));
        Assert.True(Ink(sheet, 0, sheet.Width, sheet.Height) - Ink(sheet, 0, sheet.Width, imagesBottom) > 50, "the legend has no names");
    }

    [Fact]
    public void MaskPictureHasColumnHeadersAndALegendOfTheClassesThatAppear()
    {
        var images = TestImages.Write(Path.Combine(dir, "images"), 2, size: Size);
        long[] Mask(int a, int b) => Enumerable.Range(0, Size * Size).Select(i => (long)(i % Size < Size / 2 ? a : i / Size < 4 ? 255 : b)).ToArray();
        var path = Path.Combine(dir, "masks.png");
        DensePredictionPicture.Masks(path, images, Size, [Mask(1, 2), Mask(1, 1)], [Mask(1, 3), Mask(2, 2)], ignoreIndex: 255, Scale, Names);

        using var sheet = Decode(path);
        Assert.Equal(3 * Cell, sheet.Width);
        int header = SheetLabels.HeaderHeight(["image", "ground truth", "prediction"], Cell);
        Assert.InRange(header, 12, 40);
        Assert.True(sheet.Height > header + 2 * Cell, $"no legend: {sheet.Height} px high, header {header} + rows {2 * Cell}");
        for (int col = 0; col < 3; col++) Assert.True(Ink(sheet, col * Cell, (col + 1) * Cell, header) > 20, $"column {col} has no header text");
        CheckLegend(sheet, header + 2 * Cell, shown: [1, 2, 3], absent: [0, 4]);
    }

    [Fact]
    public void BoxPictureHasColumnHeadersAndALegendOfTheBoxesDrawn()
    {
        var images = TestImages.Write(Path.Combine(dir, "images"), 2, size: 40);
        BoxAnnotation[][] truth = [[new(2, 2, 14, 14, 0), new(16, 16, 30, 30, 1)], [new(4, 4, 20, 28, 1)]];
        DetectedBox[][] predicted = [[new(3, 3, 15, 15, 3, 0.9f), new(1, 1, 31, 31, 4, 0.1f)], []];   // fish is below the score shown
        var path = Path.Combine(dir, "boxes.png");
        DetectionPicture.Boxes(path, images, Size, truth, predicted, Names, DetectionResize.Stretch, minScore: 0.3f, scale: Scale);

        using var sheet = Decode(path);
        Assert.Equal(2 * Cell, sheet.Width);
        int header = SheetLabels.HeaderHeight(["ground truth", "prediction (score >= 0.3)"], Cell);
        Assert.InRange(header, 12, 60);
        Assert.True(sheet.Height > header + 2 * Cell, $"no legend: {sheet.Height} px high, header {header} + rows {2 * Cell}");
        for (int col = 0; col < 2; col++) Assert.True(Ink(sheet, col * Cell, (col + 1) * Cell, header) > 20, $"column {col} has no header text");
        CheckLegend(sheet, header + 2 * Cell, shown: [0, 1, 3], absent: [2, 4]);
    }

    [Fact]
    public void LegendWrapsOntoMoreLinesOnANarrowSheet()
    {
        var entries = Enumerable.Range(0, 12).Select(c => (c, $"class name {c}")).ToList();
        int wide = SheetLabels.LegendHeight(entries, 2000), narrow = SheetLabels.LegendHeight(entries, 150);
        Assert.True(narrow > 3 * wide / 2, $"legend {narrow} px high on a 150 px sheet, {wide} px on a 2000 px one");
        Assert.Equal(0, SheetLabels.LegendHeight([], 150));
    }
}
