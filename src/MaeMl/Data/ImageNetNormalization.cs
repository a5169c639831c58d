namespace MaeMl.Data;

/// <summary>The per-channel RGB mean and standard deviation (on 0..1 pixels) used by MAE and timm for ImageNet-style inputs.</summary>
public static class ImageNetNormalization
{
    public static float[] Mean => new[] { 0.485f, 0.456f, 0.406f };
    public static float[] Std => new[] { 0.229f, 0.224f, 0.225f };
}
