using SkiaSharp;
using MaeMl.Files;

namespace MaeMl.Data;

/// <summary>Raised for an image that cannot be decoded; names the file.</summary>
public sealed class ImageDecodeException(string path, string problem) : IOException($"Cannot decode image '{path}': {problem}")
{
    /// <summary>The file (or, for in-memory data, the name) that failed to decode.</summary>
    public string ImagePath { get; } = path;
}

/// <summary>
/// Decodes image files with SkiaSharp into 8-bit RGB: grayscale is expanded, alpha is dropped (as PIL's
/// <c>convert('RGB')</c>), CMYK JPEGs and 16-bit PNGs are converted by Skia's codecs.
/// </summary>
public static class ImageDecoder
{
    /// <summary>Images with more pixels than this are refused from their header, before any pixel memory is taken
    /// (a 1 KB PNG can declare 100000 x 100000 pixels). Default 64 megapixels; the CLI's <c>--max-image-megapixels</c> sets it.</summary>
    public static long MaxPixels { get; set; } = 64_000_000;

    /// <summary>Decodes to an unpremultiplied RGBA8888 bitmap (the caller disposes it). <paramref name="maxPixels"/>
    /// overrides <see cref="MaxPixels"/>.</summary>
    public static SKBitmap DecodeBitmap(string path, long? maxPixels = null)
    {
        byte[] data;
        // a pipe or device would block (or never end) when read: only regular files are opened
        if (File.Exists(path) && !FileKind.IsRegularFile(path)) throw new ImageDecodeException(path, "not a regular file (a pipe, socket or device)");
        try { data = File.ReadAllBytes(path); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { throw new ImageDecodeException(path, e.Message); }
        return DecodeBitmap(data, path, maxPixels);
    }

    /// <summary>Decodes encoded image bytes as <see cref="DecodeBitmap(string, long?)"/> does; <paramref name="nameForErrors"/> names
    /// them in <see cref="ImageDecodeException"/> (empty, unknown format, over the pixel limit, truncated, out of memory).</summary>
    public static SKBitmap DecodeBitmap(byte[] data, string nameForErrors, long? maxPixels = null)
    {
        if (data.Length == 0) throw new ImageDecodeException(nameForErrors, "the file is empty");
        using var skData = SKData.CreateCopy(data);
        using var codec = SKCodec.Create(skData) ?? throw new ImageDecodeException(nameForErrors, "unknown or corrupt image format");
        var info = new SKImageInfo(codec.Info.Width, codec.Info.Height, SKColorType.Rgba8888, SKAlphaType.Unpremul);
        if (info.Width <= 0 || info.Height <= 0) throw new ImageDecodeException(nameForErrors, $"invalid size {info.Width}x{info.Height}");
        long limit = maxPixels ?? MaxPixels, pixels = (long)info.Width * info.Height;
        if (pixels > limit)
            throw new ImageDecodeException(nameForErrors, $"it declares {info.Width}x{info.Height} pixels ({pixels / 1e6:0.#} MP), above the pixel limit of {limit / 1e6:0.#} MP");
        // decode unpremultiplied into an opaque bitmap, then set alpha to 255: colours stay as stored (PIL's convert('RGB'))
        var bitmap = new SKBitmap(info.WithAlphaType(SKAlphaType.Opaque));
        if (bitmap.GetPixels() == IntPtr.Zero)
        {
            bitmap.Dispose();
            throw new ImageDecodeException(nameForErrors, $"not enough memory for {info.Width}x{info.Height} pixels");
        }
        var result = codec.GetPixels(info, bitmap.GetPixels());
        if (result != SKCodecResult.Success && result != SKCodecResult.IncompleteInput)
        {
            bitmap.Dispose();
            throw new ImageDecodeException(nameForErrors, $"decoder said {result}");
        }
        if (result == SKCodecResult.IncompleteInput)
        {
            bitmap.Dispose();
            throw new ImageDecodeException(nameForErrors, "the file is truncated");
        }
        var span = bitmap.GetPixelSpan();
        unsafe
        {
            byte* p = (byte*)bitmap.GetPixels();
            for (int i = 3; i < span.Length; i += 4) p[i] = 255;
        }
        return bitmap;
    }

    /// <summary>The (width, height) an image file decodes to, from its header only (no pixels are decoded).</summary>
    /// <exception cref="ImageDecodeException">Not a readable image, or an invalid size.</exception>
    public static (int Width, int Height) ReadSize(string path)
    {
        if (File.Exists(path) && !FileKind.IsRegularFile(path)) throw new ImageDecodeException(path, "not a regular file (a pipe, socket or device)");
        using var codec = SKCodec.Create(path) ?? throw new ImageDecodeException(path, "unknown or corrupt image format (or missing)");
        if (codec.Info.Width <= 0 || codec.Info.Height <= 0) throw new ImageDecodeException(path, $"invalid size {codec.Info.Width}x{codec.Info.Height}");
        return (codec.Info.Width, codec.Info.Height);
    }

    /// <summary>Decodes a file to an opaque RGBA8888 bitmap resized (squashed) to size x size with bicubic filtering.</summary>
    public static SKBitmap DecodeResized(string path, int size) => DecodeResized(path, size, size);

    /// <summary>Decodes a file to an opaque RGBA8888 bitmap resized (squashed) to <paramref name="width"/> x <paramref name="height"/> with bicubic filtering.</summary>
    public static SKBitmap DecodeResized(string path, int width, int height)
    {
        using var bitmap = DecodeBitmap(path);
        return ImageTransforms.CropResize(bitmap, new SKRect(0, 0, bitmap.Width, bitmap.Height), width, height);
    }

    /// <summary>Interleaved RGB bytes [H, W, 3] of an RGBA8888 bitmap.</summary>
    public static byte[] ToRgb(SKBitmap bitmap)
    {
        var rgba = bitmap.GetPixelSpan();
        int n = bitmap.Width * bitmap.Height;
        var rgb = new byte[n * 3];
        for (int i = 0; i < n; i++)
        {
            rgb[3 * i] = rgba[4 * i];
            rgb[3 * i + 1] = rgba[4 * i + 1];
            rgb[3 * i + 2] = rgba[4 * i + 2];
        }
        return rgb;
    }
}
