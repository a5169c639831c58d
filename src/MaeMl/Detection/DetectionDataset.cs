using MaeMl.Data;
using SkiaSharp;
using static TorchSharp.torch;

namespace MaeMl.Detection;

/// <summary>How images are brought to the model's square size; the boxes move with them.</summary>
public enum DetectionResize
{
    /// <summary>Squash to S x S (what ML.NET's <c>ResizeImages</c> with <c>Fill</c> does).</summary>
    Stretch,
    /// <summary>Keep the aspect ratio, fit the longer side to S and pad the rest (centred) with grey 114.</summary>
    Letterbox,
}

/// <summary>
/// Detection images and boxes at the model's size: images ImageNet-normalised [N, 3, S, S], boxes in model pixels. Held in
/// memory (small sets such as COCO128) or streamed (<c>stream: true</c>: the boxes are read up front, with each image's size
/// from its header, and each batch's pixels are decoded on background threads while the previous one trains). Both decode a
/// row the same way. <see cref="FlipHorizontal"/> mirrors a batch and its boxes.
/// </summary>
public sealed class DetectionDataset : IDisposable
{
    readonly Tensor? images;
    readonly DetectionResize resize;

    /// <summary>The images, [N, 3, S, S], ImageNet-normalised, at the model size (in-memory sets only).</summary>
    /// <exception cref="InvalidOperationException">The set is streamed.</exception>
    public Tensor Images => images ?? throw new InvalidOperationException("A streamed detection set holds no images in memory; its batches are decoded as they are needed");
    /// <summary>True for a set loaded with <c>stream: true</c>.</summary>
    public bool IsStreamed => images is null;
    /// <summary>Ground-truth boxes per image, in model pixels.</summary>
    public IReadOnlyList<BoxAnnotation[]> Boxes { get; }
    /// <summary>The image files, in row order.</summary>
    public IReadOnlyList<string> ImagePaths { get; }
    /// <summary>Class names by class index.</summary>
    public IReadOnlyList<string> ClassNames { get; }
    /// <summary>The model size S the images were resized to.</summary>
    public int ImageSize { get; }
    /// <summary>Number of images.</summary>
    public int Count => ImagePaths.Count;

    DetectionDataset(Tensor? images, IReadOnlyList<BoxAnnotation[]> boxes, IReadOnlyList<string> paths, IReadOnlyList<string> classes, int size,
        DetectionResize resize = DetectionResize.Stretch) =>
        (this.images, Boxes, ImagePaths, ClassNames, ImageSize, this.resize) = (images, boxes, paths, classes, size, resize);

    /// <summary>Loads images with boxes given in original pixels by <c>boxes(width, height)</c>; boxes smaller than 1 px after resizing
    /// are dropped. With <paramref name="stream"/> only the boxes are read now (each image's size from its header) and the pixels of
    /// each batch are decoded when training or evaluation needs them.</summary>
    public static DetectionDataset Load(IReadOnlyList<(string Image, Func<int, int, BoxAnnotation[]> Boxes)> items, IReadOnlyList<string> classes, int size,
        DetectionResize resize = DetectionResize.Stretch, bool stream = false)
    {
        int n = items.Count, plane = size * size;
        var pixels = stream ? null : new float[n * 3 * plane];
        var boxes = new BoxAnnotation[n][];
        Parallel.For(0, n, new ParallelOptions { MaxDegreeOfParallelism = Math.Min(2, Environment.ProcessorCount) }, i =>
        {
            var (w, h) = pixels is null ? ImageDecoder.ReadSize(items[i].Image) : DecodeRow(items[i].Image, size, resize, pixels.AsSpan(i * 3 * plane, 3 * plane));
            var (sx, sy, dx, dy) = BoxTransform(w, h, size, resize);
            boxes[i] = items[i].Boxes(w, h)
                .Select(b => b.Transform(sx, sy, dx, dy))
                .Select(b => b with { X0 = Math.Clamp(b.X0, 0, size), Y0 = Math.Clamp(b.Y0, 0, size), X1 = Math.Clamp(b.X1, 0, size), Y1 = Math.Clamp(b.Y1, 0, size) })
                .Where(b => b.Width >= 1 && b.Height >= 1 && b.Label < classes.Count).ToArray();
        });
        return new DetectionDataset(pixels is null ? null : tensor(pixels).reshape(n, 3, size, size), boxes, items.Select(x => x.Image).ToList(), classes, size, resize);
    }

    /// <summary>Decodes one image to the model size into <paramref name="chw"/> (normalised); returns its original size.</summary>
    static (int Width, int Height) DecodeRow(string path, int size, DetectionResize resize, Span<float> chw)
    {
        using var bitmap = ImageDecoder.DecodeBitmap(path);
        var (resized, _, _, _, _) = Resize(bitmap, size, resize);
        using (resized) ImageTransforms.ToNormalizedChw(resized, chw);
        return (bitmap.Width, bitmap.Height);
    }

    /// <summary>Normalised pixels [n, 3, S, S] of <paramref name="rows"/> of a streamed set, decoded from their files (thread-safe).</summary>
    internal float[] DecodeRows(long[] rows)
    {
        int per = 3 * ImageSize * ImageSize;
        var pixels = new float[rows.Length * per];
        for (int k = 0; k < rows.Length; k++) DecodeRow(ImagePaths[(int)rows[k]], ImageSize, resize, pixels.AsSpan(k * per, per));
        return pixels;
    }

    /// <summary>Images [n, 3, S, S] of the first <paramref name="n"/> rows (at most <see cref="Count"/>), in either mode (a new tensor).</summary>
    public Tensor Head(int n)
    {
        n = Math.Clamp(n, 0, Count);
        return IsStreamed ? tensor(DecodeRows(Enumerable.Range(0, n).Select(i => (long)i).ToArray())).reshape(n, 3, ImageSize, ImageSize) : Images[..n].clone();
    }

    /// <summary>Images already in memory (e.g. from an ML.NET image column) with boxes in their pixels.</summary>
    public static DetectionDataset FromBitmaps(IReadOnlyList<SKBitmap> images, IReadOnlyList<BoxAnnotation[]> boxes, IReadOnlyList<string> classes, int size,
        DetectionResize resize = DetectionResize.Stretch)
    {
        int n = images.Count, plane = size * size;
        var pixels = new float[n * 3 * plane];
        var scaled = new BoxAnnotation[n][];
        for (int i = 0; i < n; i++)
        {
            var (resized, sx, sy, dx, dy) = Resize(images[i], size, resize);
            using (resized) ImageTransforms.ToNormalizedChw(resized, pixels.AsSpan(i * 3 * plane, 3 * plane));
            scaled[i] = boxes[i].Select(b => b.Transform(sx, sy, dx, dy)).Where(b => b.Width >= 1 && b.Height >= 1).ToArray();
        }
        return new DetectionDataset(tensor(pixels).reshape(n, 3, size, size), scaled, Enumerable.Range(0, n).Select(i => $"row {i}").ToList(), classes, size);
    }

    /// <summary>
    /// Images already brought to the model's size elsewhere (e.g. by ML.NET's <c>ResizeImages</c> + <c>ExtractPixels</c>, so that
    /// training sees exactly the pixels the exported model is served): <paramref name="pixels"/> holds RGB planes 0..255 of
    /// <paramref name="boxes"/>.Count images [N, 3, S, S], normalised here as the exported graph does ((x / 255 - mean) / std);
    /// boxes are in model pixels, clipped to the image, boxes under 1 px dropped.
    /// </summary>
    public static DetectionDataset FromPixels(float[] pixels, IReadOnlyList<BoxAnnotation[]> boxes, IReadOnlyList<string> classes, int size, IReadOnlyList<string>? names = null)
    {
        int n = boxes.Count;
        if (pixels.Length != (long)n * 3 * size * size) throw new ArgumentException($"{pixels.Length} pixel values for {n} images of 3 x {size} x {size}");
        using var scope = NewDisposeScope();
        var mean = tensor(ImageNetNormalization.Mean).reshape(1, 3, 1, 1);
        var std = tensor(ImageNetNormalization.Std).reshape(1, 3, 1, 1);
        var images = ((tensor(pixels).reshape(n, 3, size, size) / 255f - mean) / std).MoveToOuterDisposeScope();
        var clipped = boxes.Select(bs => bs
            .Select(b => b with { X0 = Math.Clamp(b.X0, 0, size), Y0 = Math.Clamp(b.Y0, 0, size), X1 = Math.Clamp(b.X1, 0, size), Y1 = Math.Clamp(b.Y1, 0, size) })
            .Where(b => b.Width >= 1 && b.Height >= 1 && b.Label < classes.Count).ToArray()).ToList();
        return new DetectionDataset(images, clipped, names ?? Enumerable.Range(0, n).Select(i => $"row {i}").ToList(), classes, size);
    }

    /// <summary>The box transform x' = x * sx + dx, y' = y * sy + dy that <see cref="Resize"/> applies to an image of width x height.</summary>
    public static (float Sx, float Sy, float Dx, float Dy) BoxTransform(int width, int height, int size, DetectionResize resize)
    {
        if (resize == DetectionResize.Stretch) return ((float)size / width, (float)size / height, 0, 0);
        float scale = (float)size / Math.Max(width, height);
        float w = width * scale, h = height * scale;
        return (scale, scale, (size - w) / 2, (size - h) / 2);
    }

    /// <summary>Resizes a bitmap to size x size and gives the box transform x' = x * sx + dx, y' = y * sy + dy.</summary>
    public static (SKBitmap Bitmap, float Sx, float Sy, float Dx, float Dy) Resize(SKBitmap bitmap, int size, DetectionResize resize)
    {
        if (resize == DetectionResize.Stretch)
            return (ImageTransforms.CropResize(bitmap, new SKRect(0, 0, bitmap.Width, bitmap.Height), size, size),
                (float)size / bitmap.Width, (float)size / bitmap.Height, 0, 0);
        float scale = (float)size / Math.Max(bitmap.Width, bitmap.Height);
        float w = bitmap.Width * scale, h = bitmap.Height * scale, dx = (size - w) / 2, dy = (size - h) / 2;
        var dst = new SKBitmap(new SKImageInfo(size, size, SKColorType.Rgba8888, SKAlphaType.Opaque));
        using var canvas = new SKCanvas(dst);
        canvas.Clear(new SKColor(114, 114, 114));
        using var paint = new SKPaint { FilterQuality = SKFilterQuality.High };
        canvas.DrawBitmap(bitmap, new SKRect(dx, dy, dx + w, dy + h), paint);
        canvas.Flush();
        return (dst, scale, scale, dx, dy);
    }

    /// <summary>YOLO layout: images in <paramref name="imageDir"/>, <c>stem.txt</c> labels in <paramref name="labelDir"/> (a missing file = no objects).</summary>
    public static DetectionDataset FromYolo(string imageDir, string labelDir, IReadOnlyList<string> classes, int size, DetectionResize resize = DetectionResize.Stretch, int? limit = null, bool stream = false)
    {
        if (!Directory.Exists(labelDir)) throw new DirectoryNotFoundException($"Label folder '{labelDir}' does not exist");
        var items = ListImages(imageDir, limit).Select(p => (p, (Func<int, int, BoxAnnotation[]>)((w, h) => YoloAnnotations.Read(YoloAnnotations.LabelPath(labelDir, p), w, h)))).ToList();
        return Load(items, classes, size, resize, stream);
    }

    /// <summary>Pascal VOC layout: one XML per image in <paramref name="annotationDir"/>, images named by its <c>filename</c> in <paramref name="imageDir"/>.</summary>
    public static DetectionDataset FromPascalVoc(string imageDir, string annotationDir, List<string> classes, int size, DetectionResize resize = DetectionResize.Stretch, int? limit = null, bool stream = false)
    {
        if (!Directory.Exists(annotationDir)) throw new DirectoryNotFoundException($"Annotation folder '{annotationDir}' does not exist");
        var items = Directory.EnumerateFiles(annotationDir, "*.xml").OrderBy(p => p, StringComparer.Ordinal).Take(limit is > 0 ? limit.Value : int.MaxValue)
            .Select(x => PascalVocAnnotations.Read(x, classes))
            .Select(a => (Path.Combine(imageDir, a.FileName), (Func<int, int, BoxAnnotation[]>)((_, _) => a.Boxes))).ToList();
        return Load(items, classes, size, resize, stream);
    }

    /// <summary>COCO JSON: boxes from <paramref name="jsonPath"/>, images by <c>file_name</c> in <paramref name="imageDir"/>.</summary>
    public static DetectionDataset FromCoco(string imageDir, string jsonPath, int size, DetectionResize resize = DetectionResize.Stretch, int? limit = null, bool stream = false)
    {
        var (boxes, classes) = CocoAnnotations.Read(jsonPath);
        var items = boxes.OrderBy(kv => kv.Key, StringComparer.Ordinal).Take(limit is > 0 ? limit.Value : int.MaxValue)
            .Select(kv => (Path.Combine(imageDir, kv.Key), (Func<int, int, BoxAnnotation[]>)((_, _) => kv.Value))).ToList();
        return Load(items, classes, size, resize, stream);
    }

    static List<string> ListImages(string dir, int? limit)
    {
        if (!Directory.Exists(dir)) throw new DirectoryNotFoundException($"Image folder '{dir}' does not exist");
        var files = Directory.EnumerateFiles(dir).Where(p => ImageFolder.Extensions.Contains(Path.GetExtension(p))).OrderBy(p => p, StringComparer.Ordinal).ToList();
        if (files.Count == 0) throw new InvalidDataException($"No images in '{dir}'");
        return limit is > 0 ? files.Take(limit.Value).ToList() : files;
    }

    /// <summary>Mirrors images [N, 3, S, S] left-right and their boxes.</summary>
    public static (Tensor Images, BoxAnnotation[][] Boxes) FlipHorizontal(Tensor images, IEnumerable<BoxAnnotation[]> boxes)
    {
        float width = images.shape[3];
        return (images.flip(3), boxes.Select(bs => bs.Select(b => b.FlipHorizontal(width)).ToArray()).ToArray());
    }

    /// <summary>Keeps only the given classes, renumbered in the order given (e.g. [0] for COCO's person only).</summary>
    public DetectionDataset Subset(IReadOnlyList<int> keepClasses)
    {
        var map = keepClasses.Select((c, i) => (c, i)).ToDictionary(x => x.c, x => x.i);
        var boxes = Boxes.Select(bs => bs.Where(b => map.ContainsKey(b.Label)).Select(b => b with { Label = map[b.Label] }).ToArray()).ToList();
        return new DetectionDataset(images?.alias(), boxes, ImagePaths, keepClasses.Select(c => ClassNames[c]).ToList(), ImageSize, resize);
    }

    /// <summary>Frees the image tensor (nothing for a streamed set).</summary>
    public void Dispose() => images?.Dispose();
}
