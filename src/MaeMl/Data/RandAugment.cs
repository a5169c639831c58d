using SkiaSharp;

namespace MaeMl.Data;

/// <summary>
/// timm's <c>rand-m9-mstd0.5-inc1</c> RandAugment (the MAE fine-tuning policy) on SkiaSharp bitmaps: <see cref="NumOps"/>
/// ops drawn uniformly (with replacement) from the 15 of timm's <c>_RAND_INCREASING_TRANSFORMS</c>, each applied with
/// probability 0.5 at magnitude ~ N(<see cref="Magnitude"/>, <see cref="MagnitudeStd"/>) clipped to [0, 10], signs of
/// geometric and enhance ops random, fill colour timm's ImageNet mean (124, 116, 104). Enhance ops follow PIL's
/// <c>ImageEnhance</c> blends. A lighter policy is the same class with a smaller <see cref="Magnitude"/>, fewer ops or a subset
/// of <see cref="Ops"/>.
/// </summary>
/// <param name="NumOps">Ops drawn per image (timm's <c>n</c>, default 2).</param>
/// <param name="Magnitude">Mean magnitude on timm's 0..10 scale (<c>m</c>, default 9).</param>
/// <param name="MagnitudeStd">Standard deviation of the per-op magnitude (<c>mstd</c>, default 0.5; 0 for a fixed magnitude).</param>
/// <param name="Ops">The ops to draw from; null for all of <see cref="Op"/>.</param>
public sealed record RandAugment(int NumOps = 2, double Magnitude = 9, double MagnitudeStd = 0.5, IReadOnlyList<RandAugment.Op>? Ops = null)
{
    /// <summary>The operations of timm's increasing-magnitude RandAugment. Below, l = magnitude / 10 in [0, 1] and ± a random
    /// sign; colour ops change RGB and keep alpha; geometric ones fill uncovered pixels with (124, 116, 104).</summary>
    public enum Op
    {
        /// <summary>Stretches each channel's min..max to 0..255 (magnitude ignored).</summary>
        AutoContrast,
        /// <summary>PIL's <c>ImageOps.equalize</c> per channel (magnitude ignored).</summary>
        Equalize,
        /// <summary>255 - v (magnitude ignored).</summary>
        Invert,
        /// <summary>Rotation by ± 30 l degrees about the centre.</summary>
        Rotate,
        /// <summary>Keeps the top 4 - int(4 l) bits of each value.</summary>
        PosterizeIncreasing,
        /// <summary>Inverts values at or above the threshold 256 - int(256 l).</summary>
        SolarizeIncreasing,
        /// <summary>Adds int(110 l) to values below 128 (clipped at 255).</summary>
        SolarizeAdd,
        /// <summary>Saturation: blend with the greyscale image, factor 1 ± 0.9 l (PIL's <c>ImageEnhance.Color</c>).</summary>
        ColorIncreasing,
        /// <summary>Blend with the mean grey, factor 1 ± 0.9 l (PIL's <c>ImageEnhance.Contrast</c>).</summary>
        ContrastIncreasing,
        /// <summary>Blend with black, factor 1 ± 0.9 l (PIL's <c>ImageEnhance.Brightness</c>).</summary>
        BrightnessIncreasing,
        /// <summary>Blend with PIL's SMOOTH-filtered image, factor 1 ± 0.9 l (PIL's <c>ImageEnhance.Sharpness</c>).</summary>
        SharpnessIncreasing,
        /// <summary>Horizontal shear, factor ± 0.3 l.</summary>
        ShearX,
        /// <summary>Vertical shear, factor ± 0.3 l.</summary>
        ShearY,
        /// <summary>Horizontal shift by ± 0.45 l of the width.</summary>
        TranslateXRel,
        /// <summary>Vertical shift by ± 0.45 l of the height.</summary>
        TranslateYRel,
    }

    static readonly SKColor Fill = new(124, 116, 104);

    /// <summary>Returns a new augmented bitmap (the input is left unchanged).</summary>
    public SKBitmap Apply(SKBitmap image, Random rng)
    {
        var ops = Ops ?? Enum.GetValues<Op>();
        var current = image.Copy(SKColorType.Rgba8888);
        for (int i = 0; i < NumOps; i++)
        {
            var op = ops[rng.Next(ops.Count)];
            if (rng.NextDouble() >= 0.5) continue;
            double m = MagnitudeStd > 0 ? Magnitude + MagnitudeStd * Normal(rng) : Magnitude;
            double level = Math.Clamp(m, 0, 10) / 10;
            double sign = rng.NextDouble() < 0.5 ? -1 : 1;
            var next = ApplyOp(current, op, level, sign);
            if (!ReferenceEquals(next, current)) { current.Dispose(); current = next; }
        }
        return current;
    }

    static SKBitmap ApplyOp(SKBitmap b, Op op, double level, double sign) => op switch
    {
        Op.AutoContrast => Pixels(b, AutoContrastLut(b)),
        Op.Equalize => Pixels(b, EqualizeLut(b)),
        Op.Invert => Pixels(b, Lut(v => 255 - v)),
        Op.PosterizeIncreasing => Posterize(b, 4 - (int)(level * 4)),
        Op.SolarizeIncreasing => Pixels(b, Lut(v => v >= 256 - (int)(level * 256) ? 255 - v : v)),
        Op.SolarizeAdd => Pixels(b, Lut(v => v < 128 ? Math.Min(255, v + (int)(level * 110)) : v)),
        Op.ColorIncreasing => Blend(b, Gray(b, keepShape: true), 1 + sign * level * 0.9),
        Op.ContrastIncreasing => Blend(b, Gray(b, keepShape: false), 1 + sign * level * 0.9),
        Op.BrightnessIncreasing => Blend(b, Solid(b, 0), 1 + sign * level * 0.9),
        Op.SharpnessIncreasing => Blend(b, Smooth(b), 1 + sign * level * 0.9),
        Op.Rotate => Geometric(b, SKMatrix.CreateRotationDegrees((float)(sign * level * 30), b.Width / 2f, b.Height / 2f)),
        Op.ShearX => Geometric(b, SKMatrix.CreateSkew((float)(sign * level * 0.3), 0)),
        Op.ShearY => Geometric(b, SKMatrix.CreateSkew(0, (float)(sign * level * 0.3))),
        Op.TranslateXRel => Geometric(b, SKMatrix.CreateTranslation((float)(sign * level * 0.45 * b.Width), 0)),
        Op.TranslateYRel => Geometric(b, SKMatrix.CreateTranslation(0, (float)(sign * level * 0.45 * b.Height))),
        _ => b,
    };

    static byte[][] Lut(Func<int, int> f)
    {
        var t = new byte[256];
        for (int v = 0; v < 256; v++) t[v] = (byte)Math.Clamp(f(v), 0, 255);
        return [t, t, t];
    }

    static SKBitmap Posterize(SKBitmap b, int bits)
    {
        if (bits >= 8) return b;
        int mask = ~((1 << (8 - Math.Max(bits, 0))) - 1) & 0xFF;
        return Pixels(b, Lut(v => v & mask));
    }

    /// <summary>Per-channel lookup tables applied to RGB.</summary>
    static SKBitmap Pixels(SKBitmap b, byte[][] lut)
    {
        var result = b.Copy();
        var px = result.GetPixelSpan();
        unsafe
        {
            byte* p = (byte*)result.GetPixels();
            for (int i = 0; i < px.Length; i += 4) { p[i] = lut[0][p[i]]; p[i + 1] = lut[1][p[i + 1]]; p[i + 2] = lut[2][p[i + 2]]; }
        }
        return result;
    }

    static byte[][] AutoContrastLut(SKBitmap b)
    {
        var px = b.GetPixelSpan();
        var luts = new byte[3][];
        for (int c = 0; c < 3; c++)
        {
            int lo = 255, hi = 0;
            for (int i = c; i < px.Length; i += 4) { lo = Math.Min(lo, px[i]); hi = Math.Max(hi, px[i]); }
            var t = new byte[256];
            for (int v = 0; v < 256; v++) t[v] = hi <= lo ? (byte)v : (byte)Math.Clamp((v - lo) * 255.0 / (hi - lo), 0, 255);
            luts[c] = t;
        }
        return luts;
    }

    /// <summary>PIL's <c>ImageOps.equalize</c> per channel.</summary>
    static byte[][] EqualizeLut(SKBitmap b)
    {
        var px = b.GetPixelSpan();
        var luts = new byte[3][];
        for (int c = 0; c < 3; c++)
        {
            var hist = new int[256];
            for (int i = c; i < px.Length; i += 4) hist[px[i]]++;
            var nonZero = hist.Where(h => h > 0).ToList();
            var t = new byte[256];
            int step = nonZero.Count <= 1 ? 0 : (nonZero.Sum() - nonZero[^1]) / 255;
            if (step == 0) { for (int v = 0; v < 256; v++) t[v] = (byte)v; }
            else
            {
                int n = step / 2;
                for (int v = 0; v < 256; v++) { t[v] = (byte)Math.Min(255, n / step); n += hist[v]; }
            }
            luts[c] = t;
        }
        return luts;
    }

    /// <summary>Grey (L = 0.299 R + 0.587 G + 0.114 B) image (<paramref name="keepShape"/>), or a solid image of the mean grey (PIL's Contrast degenerate).</summary>
    static SKBitmap Gray(SKBitmap b, bool keepShape)
    {
        var result = b.Copy();
        var px = result.GetPixelSpan();
        double sum = 0;
        unsafe
        {
            byte* p = (byte*)result.GetPixels();
            for (int i = 0; i < px.Length; i += 4)
            {
                byte l = (byte)((p[i] * 299 + p[i + 1] * 587 + p[i + 2] * 114 + 500) / 1000);
                sum += l;
                p[i] = p[i + 1] = p[i + 2] = l;
            }
        }
        if (keepShape) return result;
        result.Dispose();
        return Solid(b, (byte)Math.Round(sum / (px.Length / 4)));
    }

    static SKBitmap Solid(SKBitmap b, byte value)
    {
        var result = new SKBitmap(b.Info);
        result.Erase(new SKColor(value, value, value));
        return result;
    }

    /// <summary>PIL's SMOOTH filter (3x3, centre weight 5, total 13); the border is kept.</summary>
    static SKBitmap Smooth(SKBitmap b)
    {
        var result = b.Copy();
        int w = b.Width, h = b.Height, row = b.RowBytes;
        var src = b.GetPixelSpan();
        unsafe
        {
            byte* p = (byte*)result.GetPixels();
            for (int y = 1; y < h - 1; y++)
            for (int x = 1; x < w - 1; x++)
            for (int c = 0; c < 3; c++)
            {
                int s = 0;
                for (int dy = -1; dy <= 1; dy++)
                    for (int dx = -1; dx <= 1; dx++) s += src[(y + dy) * row + 4 * (x + dx) + c] * (dx == 0 && dy == 0 ? 5 : 1);
                p[y * row + 4 * x + c] = (byte)((s + 6) / 13);
            }
        }
        return result;
    }

    /// <summary>PIL's <c>Image.blend(degenerate, image, factor)</c>: degenerate + factor (image - degenerate), clipped.</summary>
    static SKBitmap Blend(SKBitmap b, SKBitmap degenerate, double factor)
    {
        var result = b.Copy();
        var d = degenerate.GetPixelSpan();
        unsafe
        {
            byte* p = (byte*)result.GetPixels();
            for (int i = 0; i < d.Length; i++)
                if ((i & 3) != 3) p[i] = (byte)Math.Clamp(Math.Round(d[i] + factor * (p[i] - d[i])), 0, 255);
        }
        degenerate.Dispose();
        return result;
    }

    /// <summary>Affine warp (bilinear) with the fill colour outside the image.</summary>
    static SKBitmap Geometric(SKBitmap b, SKMatrix matrix)
    {
        var result = new SKBitmap(b.Info);
        using var canvas = new SKCanvas(result);
        canvas.Clear(Fill);
        canvas.SetMatrix(matrix);
        using var paint = new SKPaint { FilterQuality = SKFilterQuality.Low, IsAntialias = false };
        canvas.DrawBitmap(b, 0, 0, paint);
        canvas.Flush();
        return result;
    }

    static double Normal(Random rng) => Math.Sqrt(-2 * Math.Log(1 - rng.NextDouble())) * Math.Cos(2 * Math.PI * rng.NextDouble());
}
