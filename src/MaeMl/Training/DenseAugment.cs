using TorchSharp;
using static TorchSharp.torch;

namespace MaeMl.Training;

/// <summary>
/// Batch augmentations of dense training on model-size tensors, drawn from the batch's own <see cref="Random"/> (so a resumed run
/// sees the same ones): a scale jitter that zooms into a random window of the image's aspect ratio (sides a uniform fraction in
/// [min scale, 1] of the image's, resized back; boxes and masks move with it) and a colour jitter of brightness and contrast per image.
/// </summary>
internal static class DenseAugment
{
    /// <summary>A square window of side <c>round(r S)</c>, r uniform in [<paramref name="minScale"/>, 1], at a uniform position.</summary>
    public static (int X0, int Y0, int Side) Window(Random rng, int size, double minScale)
    {
        var (x0, y0, side, _) = Window(rng, size, size, minScale);
        return (x0, y0, side);
    }

    /// <summary>A window of <c>round(r W)</c> x <c>round(r H)</c> (the image's aspect ratio), r uniform in [<paramref name="minScale"/>, 1], at a
    /// uniform position; a square image draws what <see cref="Window(Random, int, double)"/> draws.</summary>
    public static (int X0, int Y0, int Width, int Height) Window(Random rng, int width, int height, double minScale)
    {
        double r = minScale + (1 - minScale) * rng.NextDouble();
        int w = Math.Clamp((int)Math.Round(width * r), 1, width), h = Math.Clamp((int)Math.Round(height * r), 1, height);
        return (rng.Next(width - w + 1), rng.Next(height - h + 1), w, h);
    }

    /// <summary>The window of images [N, C, S, S] (bilinear) or of class ids [N, S, S] (nearest) resized back to S x S.</summary>
    public static Tensor Zoom(Tensor x, (int X0, int Y0, int Side) w, int size) => Zoom(x, (w.X0, w.Y0, w.Side, w.Side), size, size);

    /// <summary>The window of images [N, C, H, W] (bilinear) or of class ids [N, H, W] (nearest) resized back to <paramref name="width"/> x <paramref name="height"/>.</summary>
    public static Tensor Zoom(Tensor x, (int X0, int Y0, int Width, int Height) w, int width, int height)
    {
        using var scope = NewDisposeScope();
        bool labels = x.ndim == 3;
        var crop = (labels ? x.unsqueeze(1).to_type(ScalarType.Float32) : x)
            [TensorIndex.Colon, TensorIndex.Colon, TensorIndex.Slice(w.Y0, w.Y0 + w.Height), TensorIndex.Slice(w.X0, w.X0 + w.Width)];
        var resized = labels
            ? nn.functional.interpolate(crop, new long[] { height, width }, mode: InterpolationMode.Nearest).squeeze(1).to_type(x.dtype)
            : nn.functional.interpolate(crop, new long[] { height, width }, mode: InterpolationMode.Bilinear, align_corners: false);
        return resized.MoveToOuterDisposeScope();
    }

    /// <summary>Per image: contrast c and brightness b uniform in [1 - s, 1 + s] and [-s, s] (in normalised units): <c>(x - mean) c + mean + b</c>.</summary>
    public static Tensor Colour(Tensor images, Random rng, double strength)
    {
        using var scope = NewDisposeScope();
        long n = images.shape[0];
        var c = new float[n];
        var b = new float[n];
        for (int i = 0; i < n; i++) { c[i] = (float)(1 + strength * (2 * rng.NextDouble() - 1)); b[i] = (float)(strength * (2 * rng.NextDouble() - 1)); }
        var contrast = tensor(c, device: images.device).view(n, 1, 1, 1);
        var brightness = tensor(b, device: images.device).view(n, 1, 1, 1);
        var mean = images.mean(new long[] { 1, 2, 3 }, keepdim: true);
        return images.sub(mean).mul(contrast).add(mean, Model.Scalars.One).add(brightness, Model.Scalars.One).MoveToOuterDisposeScope();
    }
}
