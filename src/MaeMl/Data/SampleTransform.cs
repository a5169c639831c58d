using SkiaSharp;

namespace MaeMl.Data;

/// <summary>Turns a decoded image into normalised CHW floats of the model's input size, using <c>rng</c> for any randomness.</summary>
public delegate void SampleTransform(SKBitmap image, Random rng, Span<float> chw);

/// <summary>The transforms of MAE's recipes.</summary>
public static class SampleTransforms
{
    /// <summary><c>main_pretrain.py</c>: RandomResizedCrop(size, scale=(0.2, 1.0), bicubic), RandomHorizontalFlip, Normalize(ImageNet).</summary>
    public static SampleTransform Pretrain(int size, double minScale = 0.2) => (image, rng, chw) =>
    {
        var box = ImageTransforms.RandomResizedCropBox(image.Width, image.Height, rng, minScale, 1.0);
        using var crop = ImageTransforms.CropResize(image, box, size, size);
        ImageTransforms.ToNormalizedChw(crop, chw, flip: rng.NextDouble() < 0.5);
    };

    /// <summary>Deterministic: resize to size x size (no crop), Normalize(ImageNet). For small images such as CIFAR-10 and for reconstructions.</summary>
    public static SampleTransform Resize(int size) => (image, _, chw) =>
    {
        if (image.Width == size && image.Height == size) { ImageTransforms.ToNormalizedChw(image, chw); return; }
        using var resized = ImageTransforms.CropResize(image, new SKRect(0, 0, image.Width, image.Height), size, size);
        ImageTransforms.ToNormalizedChw(resized, chw);
    };

    /// <summary>Deterministic evaluation transform of <c>main_finetune.py</c>: shorter side to size/0.875, center crop, Normalize(ImageNet).</summary>
    public static SampleTransform ResizeCenterCrop(int size, double cropPct = 224.0 / 256.0) => (image, _, chw) =>
    {
        using var crop = ImageTransforms.ResizeCenterCrop(image, size, cropPct);
        ImageTransforms.ToNormalizedChw(crop, chw);
    };

    /// <summary><c>main_finetune.py</c>'s training transform (timm <c>create_transform</c>): RandomResizedCrop(size, scale=(minScale, 1), bicubic),
    /// RandomHorizontalFlip, RandAugment (null: none), Normalize(ImageNet), RandomErasing (null: none).</summary>
    public static SampleTransform Finetune(int size, double minScale = 0.08, RandAugment? randAugment = null, RandomErasing? erasing = null) => (image, rng, chw) =>
    {
        var box = ImageTransforms.RandomResizedCropBox(image.Width, image.Height, rng, minScale, 1.0);
        using var crop = ImageTransforms.CropResize(image, box, size, size);
        bool flip = rng.NextDouble() < 0.5;
        if (randAugment is null) ImageTransforms.ToNormalizedChw(crop, chw, flip);
        else
        {
            using var augmented = randAugment.Apply(crop, rng);
            ImageTransforms.ToNormalizedChw(augmented, chw, flip);
        }
        erasing?.Apply(chw, 3, size, size, rng);
    };
}
