using TorchSharp;
using static TorchSharp.torch;

namespace MaeMl.Data;

/// <summary>
/// The per-channel RGB mean and standard deviation of ImageNet, used by MAE (and timm/torchvision) to normalise
/// pixels scaled to [0, 1]: <c>x = (pixel / 255 - Mean[c]) / Std[c]</c>. Each call returns a fresh array.
/// </summary>
public static class ImageNetNormalization
{
    /// <summary>R, G, B means of pixels in [0, 1].</summary>
    public static float[] Mean => new[] { 0.485f, 0.456f, 0.406f };

    /// <summary>R, G, B standard deviations of pixels in [0, 1].</summary>
    public static float[] Std => new[] { 0.229f, 0.224f, 0.225f };

    /// <summary><c>(pixels / 255 - Mean) / Std</c> of RGB images [N, 3, H, W] holding 0..255 (a new tensor): what every exported MaeMl
    /// graph computes from ML.NET's <c>ExtractPixels</c>, and so what the TorchSharp side of a parity check feeds the model.</summary>
    public static Tensor Normalize(Tensor pixels)
    {
        using var mean = tensor(Mean).view(1, 3, 1, 1);
        using var std = tensor(Std).view(1, 3, 1, 1);
        using var scale = 255f.ToScalar();
        return pixels.div(scale).sub_(mean).div_(std);   // sub has no alpha in TorchSharp: no temporary Scalar
    }

    /// <summary>Random RGB images [N, 3, S, S], float32 with integer values 0..255 drawn from a generator seeded by <paramref name="seed"/>:
    /// the inputs of the ONNX parity checks.</summary>
    public static Tensor RandomPixels(int images, int size, int seed) => RandomPixels(images, size, size, seed);

    /// <summary>The same for images [N, 3, H, W] of <paramref name="height"/> x <paramref name="width"/> (a square size gives the square call's values).</summary>
    public static Tensor RandomPixels(int images, int height, int width, int seed) =>
        randint(0, 256, [images, 3, height, width], generator: new Generator((ulong)seed)).to(ScalarType.Float32);
}
