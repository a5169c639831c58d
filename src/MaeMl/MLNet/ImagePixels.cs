using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Transforms.Image;
using MaeMl.Model;
using SkiaSharp;

namespace MaeMl.MLNet;

/// <summary>
/// The one way MaeMl's ML.NET estimators turn an image column into what every exported MaeMl graph takes, and the one
/// <see cref="MLImage"/> to bitmap conversion: <c>ResizeImages</c> to the model size (IsoCrop + centre for classifiers and the
/// featurizer, Fill for the dense tasks) then <c>ExtractPixels</c> as RGB planes with values 0..255 in float (the graphs
/// normalise themselves).
/// </summary>
internal static class ImagePixels
{
    /// <summary>ResizeImages(<paramref name="resizedColumn"/>) + ExtractPixels(<paramref name="pixelsColumn"/>) from <paramref name="imageColumn"/>,
    /// appended to <paramref name="onto"/> (or a new chain).</summary>
    internal static EstimatorChain<ITransformer> Chain(TransformsCatalog t, string imageColumn, InputSize size, string resizedColumn, string pixelsColumn,
        ImageResizingEstimator.ResizingKind kind = ImageResizingEstimator.ResizingKind.IsoCrop, ImageResizingEstimator.Anchor anchor = ImageResizingEstimator.Anchor.Center,
        EstimatorChain<ITransformer>? onto = null) =>
        (onto ?? new EstimatorChain<ITransformer>())
            .Append<ITransformer>(t.ResizeImages(resizedColumn, size.Width, size.Height, imageColumn, kind, anchor))
            .Append<ITransformer>(t.ExtractPixels(pixelsColumn, resizedColumn, ImagePixelExtractingEstimator.ColorBits.Rgb, ImagePixelExtractingEstimator.ColorsOrder.ARGB,
                interleavePixelColors: false, offsetImage: 0f, scaleImage: 1f, outputAsFloatArray: true));

    /// <summary>An unpremultiplied SkiaSharp copy of an ML.NET image (BGRA or RGBA, as the image holds it).</summary>
    /// <exception cref="InvalidOperationException">The image's pixel buffer does not match its size.</exception>
    internal static SKBitmap ToBitmap(MLImage image)
    {
        ArgumentNullException.ThrowIfNull(image);
        var colorType = image.PixelFormat == MLPixelFormat.Bgra32 ? SKColorType.Bgra8888 : SKColorType.Rgba8888;
        var bitmap = new SKBitmap(new SKImageInfo(image.Width, image.Height, colorType, SKAlphaType.Unpremul));
        var pixels = image.Pixels;
        if (pixels.Length != bitmap.ByteCount)
        {
            bitmap.Dispose();
            throw new InvalidOperationException($"{pixels.Length} pixel bytes for a {image.Width}x{image.Height} image");
        }
        unsafe { pixels.CopyTo(new Span<byte>((void*)bitmap.GetPixels(), bitmap.ByteCount)); }
        return bitmap;
    }
}
