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
}
