using TorchSharp;
using static TorchSharp.torch;

namespace MaeMl.Training;

/// <summary>
/// Batch augmentations of dense training on model-size tensors, drawn from the batch's own <see cref="Random"/> (so a resumed run
/// sees the same ones): a scale jitter that zooms into a random square window (side uniform in [min scale, 1] of the image, resized
/// back; boxes and masks move with it) and a colour jitter of brightness and contrast per image.
/// </summary>
internal static class DenseAugment
{
    /// <summary>A square window of side <c>round(r S)</c>, r uniform in [<paramref name="minScale"/>, 1], at a uniform position.</summary>
    public static (int X0, int Y0, int Side) Window(Random rng, int size, double minScale)
    {
        int side = Math.Clamp((int)Math.Round(size * (minScale + (1 - minScale) * rng.NextDouble())), 1, size);
        return (rng.Next(size - side + 1), rng.Next(size - side + 1), side);
    }

    /// <summary>The window of images [N, C, S, S] (bilinear) or of class ids [N, S, S] (nearest) resized back to S x S.</summary>
    public static Tensor Zoom(Tensor x, (int X0, int Y0, int Side) w, int size)
    {
        using var scope = NewDisposeScope();
        bool labels = x.ndim == 3;
        var crop = (labels ? x.unsqueeze(1).to_type(ScalarType.Float32) : x)
            [TensorIndex.Colon, TensorIndex.Colon, TensorIndex.Slice(w.Y0, w.Y0 + w.Side), TensorIndex.Slice(w.X0, w.X0 + w.Side)];
        var resized = labels
            ? nn.functional.interpolate(crop, new long[] { size, size }, mode: InterpolationMode.Nearest).squeeze(1).to_type(x.dtype)
            : nn.functional.interpolate(crop, new long[] { size, size }, mode: InterpolationMode.Bilinear, align_corners: false);
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
