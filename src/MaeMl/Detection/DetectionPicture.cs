using MaeMl.Data;
using MaeMl.Visualization;
using SkiaSharp;

namespace MaeMl.Detection;

/// <summary>Pictures of detections: boxes with class labels and scores over the images at the model's size, ground truth beside,
/// with column headers and a class legend.</summary>
public static class DetectionPicture
{
    /// <summary>
    /// One row per image: ground-truth boxes (left) and predictions scored at least <paramref name="minScore"/> (right),
    /// <paramref name="scale"/> x the model size, under a header naming the columns and over a legend of the classes drawn
    /// (colour swatch and name; <see cref="SheetLabels"/>).
    /// </summary>
    public static void Boxes(string path, IReadOnlyList<string> images, int size, IReadOnlyList<BoxAnnotation[]> truth, IReadOnlyList<DetectedBox[]> predicted,
        IReadOnlyList<string> classNames, DetectionResize resize, float minScore = 0.3f, int scale = 3)
    {
        int cell = size * scale, n = images.Count, width = 2 * cell;
        string[] titles = ["ground truth", FormattableString.Invariant($"prediction (score >= {minScore:0.###})")];
        var shown = Enumerable.Range(0, n).Select(i => predicted[i].Where(b => b.Score >= minScore).ToArray()).ToList();
        var legend = truth.Take(n).SelectMany(bs => bs.Select(b => b.Label)).Concat(shown.SelectMany(bs => bs.Select(b => b.Label)))
            .Distinct().Order().Select(c => (c, Name(classNames, c))).ToList();
        int header = SheetLabels.HeaderHeight(titles, cell);
        using var sheet = new SKBitmap(width, header + n * cell + SheetLabels.LegendHeight(legend, width));
        using var canvas = new SKCanvas(sheet);
        canvas.Clear(SKColors.White);
        SheetLabels.DrawHeader(canvas, titles, cell);
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
                    shown[i].Select(b => (b.X0, b.Y0, b.X1, b.Y1, b.Label, Text: $"{Name(classNames, b.Label)} {b.Score:F2}")).ToArray(),
                };
                float oy = header + i * cell;
                canvas.Save();
                canvas.ClipRect(new SKRect(0, oy, width, oy + cell));   // captions stay inside their row, off the header
                for (int col = 0; col < 2; col++)
                {
                    float ox = col * cell;
                    canvas.DrawBitmap(resized, new SKRect(ox, oy, ox + cell, oy + cell));
                    foreach (var (x0, y0, x1, y1, label, caption) in boxes[col])
                    {
                        stroke.Color = text.Color = DensePredictionPicture.ClassColor(label);
                        canvas.DrawRect(ox + x0 * scale, oy + y0 * scale, (x1 - x0) * scale, (y1 - y0) * scale, stroke);
                        canvas.DrawText(caption, ox + x0 * scale + 2, oy + Math.Max(y0 * scale - 2, 10), text);
                    }
                }
                canvas.Restore();
            }
        }
        SheetLabels.DrawLegend(canvas, legend, width, header + n * cell);
        PlotFont.SavePng(sheet, path);
    }

    static string Name(IReadOnlyList<string> names, int label) => label >= 0 && label < names.Count ? names[label] : label.ToString();
}
