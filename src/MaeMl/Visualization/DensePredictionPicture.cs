using MaeMl.Data;
using MaeMl.Detection;
using SkiaSharp;

namespace MaeMl.Visualization;

/// <summary>Pictures of dense predictions: boxes with class labels and scores, or class masks as colour overlays, drawn over
/// the images at the model's size, in a grid with the ground truth beside each prediction.</summary>
public static class DensePredictionPicture
{
    /// <summary>A distinct colour per class (golden-angle hues).</summary>
    public static SKColor ClassColor(int c) => SKColor.FromHsv(c * 137.508f % 360, 75, 95);

    /// <summary>One row per image: ground-truth boxes (left) and predictions (right), <paramref name="scale"/> x the model size.</summary>
    public static void Boxes(string path, IReadOnlyList<string> images, int size, IReadOnlyList<BoxAnnotation[]> truth, IReadOnlyList<DetectedBox[]> predicted,
        IReadOnlyList<string> classNames, DetectionResize resize, float minScore = 0.3f, int scale = 3)
    {
        int cell = size * scale, n = images.Count;
        using var sheet = new SKBitmap(2 * cell, n * cell);
        using var canvas = new SKCanvas(sheet);
        canvas.Clear(SKColors.White);
        using var text = PlotFont.Text(11);
        using var stroke = new SKPaint { Style = SKPaintStyle.Stroke, StrokeWidth = 2, IsAntialias = true };
        for (int i = 0; i < n; i++)
        {
            using var source = ImageDecoder.DecodeBitmap(images[i]);
            var (resized, _, _, _, _) = DetectionDataset.Resize(source, size, resize);
            using (resized)
            {
                var boxes = new[]
                {
                    truth[i].Select(b => (b.X0, b.Y0, b.X1, b.Y1, b.Label, Text: Name(classNames, b.Label))).ToArray(),
                    predicted[i].Where(b => b.Score >= minScore).Select(b => (b.X0, b.Y0, b.X1, b.Y1, b.Label, Text: $"{Name(classNames, b.Label)} {b.Score:F2}")).ToArray(),
                };
                for (int col = 0; col < 2; col++)
                {
                    float ox = col * cell, oy = i * cell;
                    canvas.DrawBitmap(resized, new SKRect(ox, oy, ox + cell, oy + cell));
                    foreach (var (x0, y0, x1, y1, label, caption) in boxes[col])
                    {
                        stroke.Color = text.Color = ClassColor(label);
                        canvas.DrawRect(ox + x0 * scale, oy + y0 * scale, (x1 - x0) * scale, (y1 - y0) * scale, stroke);
                        canvas.DrawText(caption, ox + x0 * scale + 2, oy + Math.Max(y0 * scale - 2, 10), text);
                    }
                }
            }
        }
        PlotFont.SavePng(sheet, path);
    }

    /// <summary>One row per image: the image, the true mask and the predicted mask as overlays (alpha 0.55; the ignore label is not coloured).</summary>
    public static void Masks(string path, IReadOnlyList<string> images, int size, IReadOnlyList<long[]> truth, IReadOnlyList<long[]> predicted, int ignoreIndex, int scale = 3)
    {
        int cell = size * scale, n = images.Count;
        using var sheet = new SKBitmap(3 * cell, n * cell);
        using var canvas = new SKCanvas(sheet);
        canvas.Clear(SKColors.White);
        using var paint = new SKPaint { FilterQuality = SKFilterQuality.None };
        for (int i = 0; i < n; i++)
        {
            using var image = ImageDecoder.DecodeResized(images[i], size);
            for (int col = 0; col < 3; col++)
            {
                using var overlay = image.Copy();
                if (col > 0)
                {
                    var mask = col == 1 ? truth[i] : predicted[i];
                    for (int y = 0; y < size; y++)
                    for (int x = 0; x < size; x++)
                    {
                        int c = (int)mask[y * size + x];
                        if (c == ignoreIndex) continue;
                        var p = overlay.GetPixel(x, y);
                        var k = ClassColor(c);
                        overlay.SetPixel(x, y, new SKColor((byte)(0.45 * p.Red + 0.55 * k.Red), (byte)(0.45 * p.Green + 0.55 * k.Green), (byte)(0.45 * p.Blue + 0.55 * k.Blue)));
                    }
                }
                canvas.DrawBitmap(overlay, new SKRect(col * cell, i * cell, (col + 1) * cell, (i + 1) * cell), paint);
            }
        }
        PlotFont.SavePng(sheet, path);
    }

    static string Name(IReadOnlyList<string> names, int label) => label < names.Count ? names[label] : label.ToString();
}
