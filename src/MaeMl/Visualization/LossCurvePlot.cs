using SkiaSharp;

namespace MaeMl.Visualization;

/// <summary>Draws a training curve (the metrics.jsonl reading is <c>Training.MetricsLog.PlotLoss</c>): per-step loss (light) and its moving average against epochs.
/// Hand-drawn with SkiaSharp because plotting libraries for .NET need SkiaSharp 3, which breaks ML.NET 5's image code.</summary>
public static class LossCurvePlot
{
    /// <summary>Writes a <paramref name="width"/> x <paramref name="height"/> PNG (default 900 x 500 pixels) of <paramref name="points"/>
    /// (joined in the order given) under <paramref name="title"/>: the raw curve and a moving average over count/50 points, axes
    /// labelled <paramref name="xLabel"/> and <paramref name="yLabel"/>, written atomically. An empty list draws "no data".</summary>
    public static void Write(IReadOnlyList<(double X, double Y)> points, string pngPath, string title, int width = 900, int height = 500,
        string xLabel = "epoch", string yLabel = "loss")
    {
        using var bitmap = new SKBitmap(width, height);
        using var canvas = new SKCanvas(bitmap);
        canvas.Clear(SKColors.White);
        const float left = 70, right = 20, top = 40, bottom = 50;
        float plotW = width - left - right, plotH = height - top - bottom;
        using var axis = new SKPaint { Color = SKColors.Black, StrokeWidth = 1, IsAntialias = true, Style = SKPaintStyle.Stroke };
        using var grid = new SKPaint { Color = new SKColor(230, 230, 230), StrokeWidth = 1 };
        using var text = PlotFont.Text(13);
        using var titlePaint = PlotFont.Text(16);
        canvas.DrawText(title, left, 25, titlePaint);
        if (points.Count == 0)
        {
            canvas.DrawText("no data", left + plotW / 2 - 25, top + plotH / 2, text);
            PlotFont.SavePng(bitmap, pngPath);
            return;
        }
        double xMin = points.Min(p => p.X), xMax = points.Max(p => p.X);
        double yMin = points.Min(p => p.Y), yMax = points.Max(p => p.Y);
        if (xMax - xMin < 1e-12) { xMin -= 0.5; xMax += 0.5; }
        double pad = (yMax - yMin) * 0.05 + 1e-9; yMin -= pad; yMax += pad;
        float X(double x) => left + (float)((x - xMin) / (xMax - xMin)) * plotW;
        float Y(double y) => top + plotH - (float)((y - yMin) / (yMax - yMin)) * plotH;
        for (int i = 0; i <= 5; i++)
        {
            double yv = yMin + (yMax - yMin) * i / 5, xv = xMin + (xMax - xMin) * i / 5;
            canvas.DrawLine(left, Y(yv), left + plotW, Y(yv), grid);
            canvas.DrawText(yv.ToString("G3"), 5, Y(yv) + 4, text);
            canvas.DrawText(xv.ToString("G3"), X(xv) - 10, top + plotH + 18, text);
        }
        canvas.DrawRect(left, top, plotW, plotH, axis);
        canvas.DrawText(xLabel, left + plotW / 2 - 20, height - 8, text);
        canvas.DrawText(yLabel, 5, top - 8, text);

        using var raw = new SKPaint { Color = new SKColor(120, 160, 220, 110), StrokeWidth = 1, IsAntialias = true, Style = SKPaintStyle.Stroke };
        using var smooth = new SKPaint { Color = new SKColor(20, 60, 160), StrokeWidth = 2.5f, IsAntialias = true, Style = SKPaintStyle.Stroke };
        using (var path = new SKPath())
        {
            path.MoveTo(X(points[0].X), Y(points[0].Y));
            foreach (var p in points.Skip(1)) path.LineTo(X(p.X), Y(p.Y));
            canvas.DrawPath(path, raw);
        }
        int window = Math.Max(1, points.Count / 50);
        using (var path = new SKPath())
        {
            double sum = 0;
            for (int i = 0; i < points.Count; i++)
            {
                sum += points[i].Y;
                if (i >= window) sum -= points[i - window].Y;
                var p = (points[i].X, Y: sum / Math.Min(i + 1, window));
                if (i == 0) path.MoveTo(X(p.X), Y(p.Y)); else path.LineTo(X(p.X), Y(p.Y));
            }
            canvas.DrawPath(path, smooth);
        }
        canvas.Flush();
        PlotFont.SavePng(bitmap, pngPath);
    }
}
