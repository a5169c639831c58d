using MaeMl.Data;
using MaeMl.Model;
using SkiaSharp;
using static TorchSharp.torch;

namespace MaeMl.Segmentation;

/// <summary>
/// Images and class-index masks at the model's size, either held in memory (<see cref="Load(IReadOnlyList{ValueTuple{string, string}}, InputSize, int, int)"/>:
/// fine for sets such as COCO128 or CamVid) or streamed (<see cref="Stream(string, string, InputSize, int, int, int?)"/>: each batch is decoded from its files on
/// background threads while the previous one trains, so a set of any size fits). Images are squashed to the model's W x H
/// (<see cref="MaeConfig.InputSize"/>; bicubic) and ImageNet-normalised; masks are resized nearest-neighbour, pixel value = class id, the ignore value and ids >= NumClasses
/// become <see cref="IgnoreIndex"/>. Both modes decode a row the same way, so they train and evaluate identically.
/// </summary>
public sealed class SegmentationDataset : IDisposable
{
    readonly Tensor? images, labels;
    readonly IReadOnlyList<(string Image, string Mask)>? pairs;
    readonly InputSize size;

    /// <summary>[N, 3, H, W] float32, normalised (in-memory sets only).</summary>
    /// <exception cref="InvalidOperationException">The set is streamed.</exception>
    public Tensor Images => images ?? throw new InvalidOperationException("A streamed segmentation set holds no images in memory; its batches are decoded as they are needed");
    /// <summary>[N, H, W] int64 class ids, <see cref="IgnoreIndex"/> where unlabelled (in-memory sets only).</summary>
    /// <exception cref="InvalidOperationException">The set is streamed.</exception>
    public Tensor Labels => labels ?? throw new InvalidOperationException("A streamed segmentation set holds no masks in memory; its batches are decoded as they are needed");
    /// <summary>True for a set made by <see cref="Stream(string, string, InputSize, int, int, int?)"/>.</summary>
    public bool IsStreamed => images is null;
    /// <summary>The width and height of the model-size images.</summary>
    public InputSize ImageSize => size;
    /// <summary>Image files, in row order.</summary>
    public IReadOnlyList<string> ImagePaths { get; }
    /// <summary>Output classes K: label ids 0..K-1.</summary>
    public int NumClasses { get; }
    /// <summary>The label of unlabelled pixels in <see cref="Labels"/> (the mask's ignore value; default 255).</summary>
    public int IgnoreIndex { get; }
    /// <summary>Images N.</summary>
    public int Count => ImagePaths.Count;
    /// <summary>Mask files, in row order, when the set was read from files (<see cref="Load(IReadOnlyList{ValueTuple{string, string}}, InputSize, int, int)"/>,
    /// <see cref="Stream(string, string, InputSize, int, int, int?)"/>), so its masks can be read again at their own size; null for <see cref="FromPixels"/>.</summary>
    public IReadOnlyList<string>? MaskPaths => pairs?.Select(p => p.Mask).ToList();

    /// <summary>Class ids [1, h, w] of row <paramref name="row"/>'s mask at the mask file's own h x w (ignore value and ids >= NumClasses
    /// as <see cref="IgnoreIndex"/>), for evaluation at the labels' resolution.</summary>
    internal Tensor MaskAtOwnSize(int row)
    {
        if (pairs is null) throw new InvalidOperationException("This set was made from pixels: it has no mask files to read at their own size");
        var mask = ReadMask(pairs[row].Mask, out int w, out int h);
        var ids = new long[mask.Length];
        for (int i = 0; i < mask.Length; i++) ids[i] = Label(mask[i], NumClasses, IgnoreIndex);
        return tensor(ids).reshape(1, h, w);
    }

    SegmentationDataset(Tensor? images, Tensor? labels, IReadOnlyList<string> paths, int numClasses, int ignoreIndex, InputSize size,
        IReadOnlyList<(string Image, string Mask)>? pairs = null) =>
        (this.images, this.labels, ImagePaths, NumClasses, IgnoreIndex, this.size, this.pairs) = (images, labels, paths, numClasses, ignoreIndex, size, pairs);

    /// <summary>A streamed set over <paramref name="pairs"/>: nothing is decoded here (each file is checked to exist); training and
    /// evaluation decode each batch's rows as they go (<see cref="DecodeRows"/>), with the same result as <see cref="Load(IReadOnlyList{ValueTuple{string, string}}, InputSize, int, int)"/>.</summary>
    /// <exception cref="FileNotFoundException">An image or mask file does not exist.</exception>
    public static SegmentationDataset Stream(IReadOnlyList<(string Image, string Mask)> pairs, InputSize size, int numClasses, int ignoreValue = 255)
    {
        foreach (var (image, mask) in pairs)
            foreach (var f in new[] { image, mask })
                if (!File.Exists(f)) throw new FileNotFoundException($"'{f}' does not exist", f);
        return new SegmentationDataset(null, null, pairs.Select(p => p.Image).ToList(), numClasses, ignoreValue, size, pairs.ToList());
    }

    /// <summary>A streamed set of the image/mask pairs of two folders (<see cref="Pair"/>).</summary>
    public static SegmentationDataset Stream(string imageDir, string maskDir, InputSize size, int numClasses, int ignoreValue = 255, int? limit = null) =>
        Stream(Pair(imageDir, maskDir, limit), size, numClasses, ignoreValue);

    /// <summary>Normalised pixels [n, 3, H, W] and class ids [n, H, W] of <paramref name="rows"/>, decoded from their files (streamed
    /// sets) or copied out of memory, as flat arrays (thread-safe: the streamed loader calls it on background threads).</summary>
    internal (float[] Pixels, long[] Labels) DecodeRows(long[] rows)
    {
        int plane = size.Pixels;
        var pixels = new float[rows.Length * 3 * plane];
        var ids = new long[rows.Length * plane];
        if (pairs is null) throw new InvalidOperationException("DecodeRows is for streamed sets");
        for (int k = 0; k < rows.Length; k++) DecodeRow(pairs[(int)rows[k]], size, NumClasses, IgnoreIndex, pixels.AsSpan(k * 3 * plane, 3 * plane), ids.AsSpan(k * plane, plane));
        return (pixels, ids);
    }

    /// <summary>Images [n, 3, H, W] and labels [n, H, W] of the first <paramref name="n"/> rows (at most <see cref="Count"/>), in either mode (new tensors).</summary>
    public (Tensor Images, Tensor Labels) Head(int n)
    {
        n = Math.Clamp(n, 0, Count);
        if (!IsStreamed) return (Images[..n].clone(), Labels[..n].clone());
        var (pixels, ids) = DecodeRows(Enumerable.Range(0, n).Select(i => (long)i).ToArray());
        return (tensor(pixels).reshape(n, 3, size.Height, size.Width), tensor(ids).reshape(n, size.Height, size.Width));
    }

    /// <summary>The label of mask value <paramref name="v"/>: the class id, or <paramref name="ignoreValue"/> for the ignore value and ids &gt;= <paramref name="numClasses"/>.</summary>
    static long Label(byte v, int numClasses, int ignoreValue) => v == ignoreValue || v >= numClasses ? ignoreValue : v;

    /// <summary>One pair at the model's size: the image's normalised CHW pixels and the mask's class ids (nearest pixel).</summary>
    static void DecodeRow((string Image, string Mask) pair, InputSize size, int numClasses, int ignoreValue, Span<float> pixels, Span<long> labels)
    {
        using (var bitmap = ImageDecoder.DecodeResized(pair.Image, size.Width, size.Height))
            ImageTransforms.ToNormalizedChw(bitmap, pixels);
        var mask = ReadMask(pair.Mask, out int w, out int h);
        for (int y = 0; y < size.Height; y++)
        for (int x = 0; x < size.Width; x++)
        {
            labels[y * size.Width + x] = Label(mask[(int)((y + 0.5) * h / size.Height) * w + (int)((x + 0.5) * w / size.Width)], numClasses, ignoreValue);
        }
    }

    /// <summary>Pairs each image in <paramref name="imageDir"/> with the mask PNG of the same file stem in <paramref name="maskDir"/>;
    /// images without a mask are skipped (COCO128 labels 100 of its 128 images).</summary>
    /// <exception cref="DirectoryNotFoundException">A folder does not exist.</exception>
    /// <exception cref="InvalidDataException">No image has a mask.</exception>
    public static List<(string Image, string Mask)> Pair(string imageDir, string maskDir, int? limit = null)
    {
        if (!Directory.Exists(imageDir)) throw new DirectoryNotFoundException($"Image folder '{imageDir}' does not exist");
        if (!Directory.Exists(maskDir)) throw new DirectoryNotFoundException($"Mask folder '{maskDir}' does not exist");
        var masks = Directory.EnumerateFiles(maskDir, "*.png").ToDictionary(p => Path.GetFileNameWithoutExtension(p), StringComparer.Ordinal);
        var pairs = Directory.EnumerateFiles(imageDir).Where(p => ImageFolder.Extensions.Contains(Path.GetExtension(p)))
            .OrderBy(p => p, StringComparer.Ordinal)
            .Select(p => (Image: p, Mask: masks.GetValueOrDefault(Path.GetFileNameWithoutExtension(p))))
            .Where(p => p.Mask is not null).Select(p => (p.Image, p.Mask!)).ToList();
        if (pairs.Count == 0) throw new InvalidDataException($"No image in '{imageDir}' has a mask of the same name in '{maskDir}'");
        return limit is > 0 ? pairs.Take(limit.Value).ToList() : pairs;
    }

    /// <summary>Loads image/mask folders at the model size <paramref name="size"/> (W x H; an int is square).</summary>
    /// <param name="imageDir">Image folder.</param>
    /// <param name="maskDir">Mask folder (PNGs named as the images).</param>
    /// <param name="size">The model input's width and height (an int: a square side).</param>
    /// <param name="numClasses">Class ids 0..numClasses-1; larger ids are ignored.</param>
    /// <param name="limit">Only the first pairs (by file name), or null for all.</param>
    /// <param name="ignoreValue">Mask value that means "not labelled" (COCO128: 0); it becomes the ignore index.</param>
    public static SegmentationDataset Load(string imageDir, string maskDir, InputSize size, int numClasses, int ignoreValue = 255, int? limit = null) =>
        Load(Pair(imageDir, maskDir, limit), size, numClasses, ignoreValue);

    /// <summary>Loads <paramref name="pairs"/> (as <see cref="Pair"/> makes them) at <paramref name="size"/> (W x H);
    /// mask values equal to <paramref name="ignoreValue"/> or at least <paramref name="numClasses"/> become <paramref name="ignoreValue"/>,
    /// the dataset's <see cref="IgnoreIndex"/>. An unreadable image or mask throws an <see cref="AggregateException"/> holding its
    /// <see cref="ImageDecodeException"/> (the pairs are decoded in parallel).</summary>
    public static SegmentationDataset Load(IReadOnlyList<(string Image, string Mask)> pairs, InputSize size, int numClasses, int ignoreValue = 255)
    {
        int n = pairs.Count, plane = size.Pixels;
        var pixels = new float[n * 3 * plane];
        var labels = new long[n * plane];
        Parallel.For(0, n, new ParallelOptions { MaxDegreeOfParallelism = Math.Min(2, Environment.ProcessorCount) }, i =>
            DecodeRow(pairs[i], size, numClasses, ignoreValue, pixels.AsSpan(i * 3 * plane, 3 * plane), labels.AsSpan(i * plane, plane)));
        return new SegmentationDataset(tensor(pixels).reshape(n, 3, size.Height, size.Width), tensor(labels).reshape(n, size.Height, size.Width),
            pairs.Select(p => p.Image).ToList(), numClasses, ignoreValue, size, pairs.ToList());
    }

    /// <summary>A set from pixels already at the model's size (what ML.NET's <c>ResizeImages</c> + <c>ExtractPixels</c> give):
    /// <paramref name="pixels"/> RGB planes 0..255 of N images [N, 3, H, W] (ImageNet-normalised here), <paramref name="labels"/>
    /// class ids [N, H, W] with <paramref name="ignoreIndex"/> where unlabelled; <paramref name="size"/> is W x H.</summary>
    /// <exception cref="ArgumentException">The arrays do not hold N images of W x H.</exception>
    public static SegmentationDataset FromPixels(float[] pixels, long[] labels, InputSize size, int numClasses, int ignoreIndex, IReadOnlyList<string>? names = null)
    {
        long plane = (long)size.Width * size.Height;
        if (labels.Length % plane != 0) throw new ArgumentException($"{labels.Length} labels are not a whole number of {size.Height} x {size.Width} masks");
        int n = (int)(labels.Length / plane);
        if (pixels.Length != n * 3 * plane) throw new ArgumentException($"{pixels.Length} pixel values for {n} images of 3 x {size.Height} x {size.Width}");
        using var scope = NewDisposeScope();
        var mean = tensor(ImageNetNormalization.Mean).reshape(1, 3, 1, 1);
        var std = tensor(ImageNetNormalization.Std).reshape(1, 3, 1, 1);
        var images = ((tensor(pixels).reshape(n, 3, size.Height, size.Width) / 255f - mean) / std).MoveToOuterDisposeScope();
        var masks = tensor(labels).reshape(n, size.Height, size.Width).MoveToOuterDisposeScope();
        return new SegmentationDataset(images, masks, names ?? Enumerable.Range(0, n).Select(i => $"row {i}").ToList(), numClasses, ignoreIndex, size);
    }

    /// <summary>Class ids of a single-channel (8-bit grey) mask PNG, row-major.</summary>
    /// <exception cref="ImageDecodeException">The file is not a readable image.</exception>
    public static byte[] ReadMask(string path, out int width, out int height)
    {
        using var codec = SKCodec.Create(path) ?? throw new ImageDecodeException(path, "unknown or corrupt image format");
        var info = new SKImageInfo(codec.Info.Width, codec.Info.Height, SKColorType.Gray8, SKAlphaType.Opaque);
        if (codec.Info.ColorType != SKColorType.Gray8)
            throw new ImageDecodeException(path, $"a mask must be a single-channel 8-bit (grey) PNG of class ids, this one decodes as {codec.Info.ColorType}");
        var data = new byte[info.Width * info.Height];
        unsafe
        {
            fixed (byte* p = data)
            {
                var result = codec.GetPixels(info, (IntPtr)p);
                if (result != SKCodecResult.Success) throw new ImageDecodeException(path, $"decoder said {result}");
            }
        }
        (width, height) = (info.Width, info.Height);
        return data;
    }

    /// <summary>Disposes <see cref="Images"/> and <see cref="Labels"/> (nothing for a streamed set).</summary>
    public void Dispose() { images?.Dispose(); labels?.Dispose(); }
}
