using SkiaSharp;

namespace MaeMl.Data;

/// <summary>
/// The image transforms of MAE's recipes on SkiaSharp bitmaps, writing normalised float CHW tensors' data:
/// <c>RandomResizedCrop</c> (torchvision's sampling, bicubic), horizontal flip, resize + center crop, ImageNet normalisation.
/// </summary>
internal static class ImageTransforms
{
    /// <summary>torchvision <c>RandomResizedCrop.get_params</c>: area fraction in [scaleMin, scaleMax],
    /// log-uniform aspect ratio in [3/4, 4/3], 10 tries, then a ratio-clamped center crop.</summary>
    public static SKRect RandomResizedCropBox(int width, int height, Random rng, double scaleMin = 0.2, double scaleMax = 1.0,
        double ratioMin = 3.0 / 4.0, double ratioMax = 4.0 / 3.0)
    {
        double area = (double)width * height;
        double logMin = Math.Log(ratioMin), logMax = Math.Log(ratioMax);
        for (int attempt = 0; attempt < 10; attempt++)
        {
            double target = area * (scaleMin + rng.NextDouble() * (scaleMax - scaleMin));
            double ratio = Math.Exp(logMin + rng.NextDouble() * (logMax - logMin));
            int w = (int)Math.Round(Math.Sqrt(target * ratio));
            int h = (int)Math.Round(Math.Sqrt(target / ratio));
            if (w > 0 && h > 0 && w <= width && h <= height)
            {
                int top = rng.Next(0, height - h + 1), left = rng.Next(0, width - w + 1);
                return new SKRect(left, top, left + w, top + h);
            }
        }
        double inRatio = (double)width / height;
        int cw, ch;
        if (inRatio < ratioMin) { cw = width; ch = (int)Math.Round(cw / ratioMin); }
        else if (inRatio > ratioMax) { ch = height; cw = (int)Math.Round(ch * ratioMax); }
        else { cw = width; ch = height; }
        int t = (height - ch) / 2, l = (width - cw) / 2;
        return new SKRect(l, t, l + cw, t + ch);
    }

    /// <summary>Crops <paramref name="box"/> and resizes it to width x height with Skia's high-quality (bicubic) filter.</summary>
    public static SKBitmap CropResize(SKBitmap source, SKRect box, int width, int height)
    {
        var dst = new SKBitmap(new SKImageInfo(width, height, SKColorType.Rgba8888, SKAlphaType.Opaque));
        using var canvas = new SKCanvas(dst);
        using var paint = new SKPaint { FilterQuality = SKFilterQuality.High, IsAntialias = false, BlendMode = SKBlendMode.Src };
        canvas.DrawBitmap(source, box, new SKRect(0, 0, width, height), paint);
        canvas.Flush();
        return dst;
    }

    /// <summary>Evaluation transform of MAE fine-tuning: resize the shorter side to size/crop_pct (crop_pct 224/256) then center crop.</summary>
    public static SKBitmap ResizeCenterCrop(SKBitmap source, int size, double cropPct = 224.0 / 256.0)
    {
        double shorter = Math.Min(source.Width, source.Height);
        double cropSide = shorter * cropPct; // the center crop of the resized image, in source pixels
        float left = (float)((source.Width - cropSide) / 2), top = (float)((source.Height - cropSide) / 2);
        return CropResize(source, new SKRect(left, top, left + (float)cropSide, top + (float)cropSide), size, size);
    }

    /// <summary>Writes an RGBA8888 bitmap as normalised CHW floats ((x/255 - mean)/std) into <paramref name="destination"/>,
    /// mirrored left-right when <paramref name="flip"/>.</summary>
    public static void ToNormalizedChw(SKBitmap bitmap, Span<float> destination, bool flip = false, float[]? mean = null, float[]? std = null)
    {
        mean ??= ImageNetNormalization.Mean;
        std ??= ImageNetNormalization.Std;
        int w = bitmap.Width, h = bitmap.Height, plane = w * h;
        if (destination.Length < 3 * plane) throw new ArgumentException($"destination holds {destination.Length} floats, needs {3 * plane}");
        var px = bitmap.GetPixelSpan();
        int rowBytes = bitmap.RowBytes;
        Span<float> scale = stackalloc float[3], offset = stackalloc float[3];
        for (int c = 0; c < 3; c++) { scale[c] = 1f / (255f * std[c]); offset[c] = -mean[c] / std[c]; }
        for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
        {
            int s = y * rowBytes + 4 * (flip ? w - 1 - x : x), d = y * w + x;
            destination[d] = px[s] * scale[0] + offset[0];
            destination[plane + d] = px[s + 1] * scale[1] + offset[1];
            destination[2 * plane + d] = px[s + 2] * scale[2] + offset[2];
        }
    }
}
