namespace MaeMl.Data;

/// <summary>One image file and, for labelled folders, its class index.</summary>
public readonly record struct ImageSample(string Path, int Label);

/// <summary>
/// Image files under a folder. <see cref="Unlabelled"/> takes every image recursively (class subfolders are
/// ignored, as MAE pretraining ignores labels); <see cref="Labelled"/> reads the <c>root/&lt;class&gt;/*.jpg</c> layout
/// of torchvision's <c>ImageFolder</c>, classes sorted by name.
/// </summary>
public sealed class ImageFolder
{
    /// <summary>File extensions read as images (case-insensitive).</summary>
    public static readonly IReadOnlySet<string> Extensions = new HashSet<string>(StringComparer.OrdinalIgnoreCase)
        { ".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".ico", ".wbmp", ".heif", ".heic", ".avif" };

    public string Root { get; }
    public IReadOnlyList<ImageSample> Samples { get; }
    /// <summary>Class names in label order (empty for unlabelled folders).</summary>
    public IReadOnlyList<string> Classes { get; }

    ImageFolder(string root, IReadOnlyList<ImageSample> samples, IReadOnlyList<string> classes)
    { Root = root; Samples = samples; Classes = classes; }

    /// <summary>Every image under <paramref name="root"/>, recursively, in ordinal path order; labels are 0.</summary>
    public static ImageFolder Unlabelled(string root, int? limit = null)
    {
        CheckRoot(root);
        var files = Directory.EnumerateFiles(root, "*", SearchOption.AllDirectories)
            .Where(f => Extensions.Contains(Path.GetExtension(f)))
            .Order(StringComparer.Ordinal)
            .ToList();
        if (files.Count == 0)
            throw new InvalidDataException($"Image folder '{root}' contains no images (looked for {string.Join(", ", Extensions)} recursively)");
        if (limit is > 0) files = Subsample(files, limit.Value);
        return new ImageFolder(root, files.Select(f => new ImageSample(f, 0)).ToList(), Array.Empty<string>());
    }

    /// <summary>The <c>root/&lt;class&gt;/...</c> layout; a class folder without images is an error.</summary>
    public static ImageFolder Labelled(string root, int? limitPerClass = null, IReadOnlyList<string>? classes = null)
    {
        CheckRoot(root);
        var found = Directory.GetDirectories(root).Select(Path.GetFileName).Order(StringComparer.Ordinal).ToList();
        classes ??= found!;
        if (classes.Count == 0) throw new InvalidDataException($"Image folder '{root}' has no class subfolders (expected root/<class>/<image>)");
        var samples = new List<ImageSample>();
        for (int label = 0; label < classes.Count; label++)
        {
            var dir = Path.Combine(root, classes[label]);
            if (!Directory.Exists(dir)) throw new InvalidDataException($"Class '{classes[label]}' has no folder in '{root}'");
            var files = Directory.EnumerateFiles(dir, "*", SearchOption.AllDirectories)
                .Where(f => Extensions.Contains(Path.GetExtension(f))).Order(StringComparer.Ordinal).ToList();
            if (files.Count == 0) throw new InvalidDataException($"Class folder '{dir}' contains no images");
            if (limitPerClass is > 0) files = Subsample(files, limitPerClass.Value);
            samples.AddRange(files.Select(f => new ImageSample(f, label)));
        }
        return new ImageFolder(root, samples, classes.ToList());
    }

    static void CheckRoot(string root)
    {
        if (string.IsNullOrWhiteSpace(root)) throw new ArgumentException("No image folder given");
        if (!Directory.Exists(root)) throw new DirectoryNotFoundException($"Image folder '{root}' does not exist");
    }

    /// <summary>Evenly spaced subset, so a limit keeps every subfolder represented.</summary>
    static List<string> Subsample(List<string> files, int limit)
    {
        if (files.Count <= limit) return files;
        return Enumerable.Range(0, limit).Select(i => files[(int)((long)i * files.Count / limit)]).ToList();
    }
}
