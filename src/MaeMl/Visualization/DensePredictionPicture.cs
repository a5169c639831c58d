using MaeMl.Data;
using MaeMl.Model;
using SkiaSharp;

namespace MaeMl.Visualization;

/// <summary>Pictures of dense predictions: class masks as colour overlays drawn over the images at the model's size (W x H), in a grid
/// with the ground truth beside each prediction, column headers and a class legend (<see cref="SheetLabels"/>), and the class
/// colours every picture uses (detection boxes: <c>Detection.DetectionPicture</c>).</summary>
public static class DensePredictionPicture
{
    /// <summary>A distinct colour per class (golden-angle hues).</summary>
    public static SKColor ClassColor(int c) => SKColor.FromHsv(c * 137.508f % 360, 75, 95);

    /// <summary>
    /// One row per image: the image, the true mask and the predicted mask as overlays (alpha 0.55; the ignore label is not coloured),
    /// under a header naming the columns and over a legend of the classes that appear (colour swatch and name; ids beyond
    /// <c>classNames</c>, or all of them without it, are named "class N").
    /// </summary>
    public static void Masks(string path, IReadOnlyList<string> images, InputSize size, IReadOnlyList<long[]> truth, IReadOnlyList<long[]> predicted, int ignoreIndex, int scale = 3,
        IReadOnlyList<string>? classNames = null)
    {
        int cell = size.Width * scale, cellHeight = size.Height * scale, n = images.Count;
        string[] titles = ["image", "ground truth", "prediction"];
        var present = new SortedSet<int>();
        for (int i = 0; i < n; i++)
            foreach (var c in truth[i].Concat(predicted[i]))
                if (c != ignoreIndex && c >= 0) present.Add((int)c);
        var legend = present.Select(c => (c, Name(classNames, c))).ToList();
        int header = SheetLabels.HeaderHeight(titles, cell), width = 3 * cell;
        using var sheet = new SKBitmap(width, header + n * cellHeight + SheetLabels.LegendHeight(legend, width));
        using var canvas = new SKCanvas(sheet);
        canvas.Clear(SKColors.White);
        SheetLabels.DrawHeader(canvas, titles, cell);
        using var paint = new SKPaint { FilterQuality = SKFilterQuality.None };
        for (int i = 0; i < n; i++)
        {
            using var image = ImageDecoder.DecodeResized(images[i], size.Width, size.Height);
            for (int col = 0; col < 3; col++)
            {
                using var overlay = image.Copy();
                if (col > 0)
                {
                    var mask = col == 1 ? truth[i] : predicted[i];
                    for (int y = 0; y < size.Height; y++)
                    for (int x = 0; x < size.Width; x++)
                    {
                        int c = (int)mask[y * size.Width + x];
                        if (c == ignoreIndex) continue;
                        var p = overlay.GetPixel(x, y);
                        var k = ClassColor(c);
                        overlay.SetPixel(x, y, new SKColor((byte)(0.45 * p.Red + 0.55 * k.Red), (byte)(0.45 * p.Green + 0.55 * k.Green), (byte)(0.45 * p.Blue + 0.55 * k.Blue)));
                    }
                }
                canvas.DrawBitmap(overlay, new SKRect(col * cell, header + i * cellHeight, (col + 1) * cell, header + (i + 1) * cellHeight), paint);
            }
        }
        SheetLabels.DrawLegend(canvas, legend, width, header + n * cellHeight);
        PlotFont.SavePng(sheet, path);
    }

    static string Name(IReadOnlyList<string>? names, int label) => names is not null && label >= 0 && label < names.Count ? names[label] : $"class {label}";
}

/// <summary>
/// The labels around a picture sheet: a header row naming the columns (a title that does not fit its column is split before
/// " (" and, if still too wide, drawn smaller) and a legend strip listing classes with their <see cref="DensePredictionPicture.ClassColor"/>
/// swatch (filled exactly with the colour) and name, wrapped onto more lines when the sheet is narrow.
/// </summary>
internal static class SheetLabels
{
    const float TextSize = 12, MinTextSize = 7, Pad = 4, Swatch = 12, SwatchGap = 4, ItemGap = 14;
    static readonly SKColor HeaderBackground = new(0xEE, 0xEE, 0xEE), Rule = new(0xBB, 0xBB, 0xBB);

    static (string[] Lines, float TextSize) Title(string title, float available, SKPaint text)
    {
        text.TextSize = TextSize;
        string[] lines = [title];
        int split = title.IndexOf(" (", StringComparison.Ordinal);
        if (text.MeasureText(title) > available && split > 0) lines = [title[..split], title[(split + 1)..]];
        float widest = lines.Max(l => text.MeasureText(l));
        return (lines, widest > available ? Math.Max(MinTextSize, TextSize * available / widest) : TextSize);
    }

    static float LineHeight(SKPaint text)
    {
        text.TextSize = TextSize;
        return MathF.Ceiling(text.FontSpacing);
    }

    /// <summary>Height of the header row over columns of <paramref name="columnWidth"/> pixels.</summary>
    public static int HeaderHeight(IReadOnlyList<string> titles, int columnWidth)
    {
        using var text = PlotFont.Text(TextSize);
        int lines = titles.Max(t => Title(t, columnWidth - 2 * Pad, text).Lines.Length);
        return (int)MathF.Ceiling(2 * Pad + lines * LineHeight(text));
    }

    /// <summary>Draws the header row at the top of the sheet, each title centred over its column.</summary>
    public static void DrawHeader(SKCanvas canvas, IReadOnlyList<string> titles, int columnWidth)
    {
        int height = HeaderHeight(titles, columnWidth);
        using var fill = new SKPaint { Color = HeaderBackground, Style = SKPaintStyle.Fill };
        canvas.DrawRect(0, 0, titles.Count * columnWidth, height, fill);
        using var text = PlotFont.Text(TextSize);
        float line = LineHeight(text);
        for (int col = 0; col < titles.Count; col++)
        {
            var (lines, size) = Title(titles[col], columnWidth - 2 * Pad, text);
            text.TextSize = size;
            float top = (height - lines.Length * line) / 2;
            for (int l = 0; l < lines.Length; l++)
            {
                float baseline = top + l * line + (line - text.FontMetrics.Descent - text.FontMetrics.Ascent) / 2;
                canvas.DrawText(lines[l], col * columnWidth + (columnWidth - text.MeasureText(lines[l])) / 2, baseline, text);
            }
        }
    }

    static List<(float X, int Line)> LegendLayout(IReadOnlyList<(int Class, string Name)> entries, int width, SKPaint text)
    {
        var at = new List<(float, int)>();
        float x = Pad;
        int line = 0;
        foreach (var (_, name) in entries)
        {
            float w = Swatch + SwatchGap + text.MeasureText(name);
            if (x > Pad && x + w > width - Pad) { x = Pad; line++; }
            at.Add((x, line));
            x += w + ItemGap;
        }
        return at;
    }

    /// <summary>Height of the legend strip for a sheet <paramref name="width"/> pixels wide (0 without entries).</summary>
    public static int LegendHeight(IReadOnlyList<(int Class, string Name)> entries, int width)
    {
        if (entries.Count == 0) return 0;
        using var text = PlotFont.Text(TextSize);
        int lines = LegendLayout(entries, width, text)[^1].Line + 1;
        return (int)MathF.Ceiling(2 * Pad + lines * Math.Max(Swatch + 4, LineHeight(text)));
    }

    /// <summary>Draws the legend strip from <paramref name="top"/> down: a rule, then per class its colour swatch and name.</summary>
    public static void DrawLegend(SKCanvas canvas, IReadOnlyList<(int Class, string Name)> entries, int width, int top)
    {
        if (entries.Count == 0) return;
        using var text = PlotFont.Text(TextSize);
        float line = Math.Max(Swatch + 4, LineHeight(text));
        using var rule = new SKPaint { Color = Rule, StrokeWidth = 1 };
        canvas.DrawLine(0, top + 0.5f, width, top + 0.5f, rule);
        using var fill = new SKPaint { Style = SKPaintStyle.Fill, IsAntialias = false };
        using var border = new SKPaint { Style = SKPaintStyle.Stroke, StrokeWidth = 1, Color = SKColors.DimGray, IsAntialias = false };
        var layout = LegendLayout(entries, width, text);
        for (int i = 0; i < entries.Count; i++)
        {
            var (x, l) = layout[i];
            float y = top + Pad + l * line;
            float sx = MathF.Round(x), sy = MathF.Round(y + (line - Swatch) / 2);
            fill.Color = DensePredictionPicture.ClassColor(entries[i].Class);
            canvas.DrawRect(sx, sy, Swatch, Swatch, fill);
            canvas.DrawRect(sx - 0.5f, sy - 0.5f, Swatch + 1, Swatch + 1, border);
            canvas.DrawText(entries[i].Name, sx + Swatch + SwatchGap, y + (line - text.FontMetrics.Descent - text.FontMetrics.Ascent) / 2, text);
        }
    }
}
