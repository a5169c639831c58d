using MaeMl.Data;
using SkiaSharp;

namespace MaeMl.Visualization;

/// <summary>Pictures of dense predictions: class masks as colour overlays drawn over the images at the model's size, in a grid
/// with the ground truth beside each prediction, and the class colours every picture uses (detection boxes:
/// <c>Detection.DetectionPicture</c>).</summary>
public static class DensePredictionPicture
{
    /// <summary>A distinct colour per class (golden-angle hues).</summary>
    public static SKColor ClassColor(int c) => SKColor.FromHsv(c * 137.508f % 360, 75, 95);

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
