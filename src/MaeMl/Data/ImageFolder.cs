using System.Runtime.InteropServices;
using MaeMl.Files;

namespace MaeMl.Data;

/// <summary>One image file (or an image held in memory) and, for labelled sets, its class index.</summary>
/// <param name="Path">The image file; for an in-memory image, a name that says where it came from (used in messages).</param>
/// <param name="Label">Index into <see cref="ImageFolder.Classes"/>; 0 in unlabelled folders.</param>
/// <param name="Image">The decoded image when it is held in memory (then <paramref name="Path"/> is not read); it must not be
/// changed while a loader uses it and is disposed by its owner.</param>
public readonly record struct ImageSample(string Path, int Label, SkiaSharp.SKBitmap? Image = null);

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

    /// <summary>The folder the images were read from, as given.</summary>
    public string Root { get; }
    /// <summary>The images: in ordinal path order for unlabelled folders, by class then path for labelled ones (after any limit).</summary>
    public IReadOnlyList<ImageSample> Samples { get; }
    /// <summary>Class names in label order (empty for unlabelled folders).</summary>
    public IReadOnlyList<string> Classes { get; }

    ImageFolder(string root, IReadOnlyList<ImageSample> samples, IReadOnlyList<string> classes)
    { Root = root; Samples = samples; Classes = classes; }

    /// <summary>A labelled set of images held in memory (e.g. the rows of an ML.NET <c>IDataView</c>); <paramref name="description"/>
    /// says where they came from and stands for the folder in messages.</summary>
    /// <exception cref="ArgumentException">A sample without an image, or a label outside <paramref name="classes"/>.</exception>
    public static ImageFolder InMemory(string description, IReadOnlyList<ImageSample> samples, IReadOnlyList<string> classes)
    {
        foreach (var s in samples)
        {
            if (s.Image is null) throw new ArgumentException($"In-memory sample '{s.Path}' holds no image");
            if (s.Label < 0 || s.Label >= Math.Max(1, classes.Count)) throw new ArgumentException($"In-memory sample '{s.Path}' has label {s.Label}, outside the {classes.Count} classes");
        }
        return new ImageFolder(description, samples, classes);
    }

    /// <summary>Every image under <paramref name="root"/>, recursively, in ordinal path order; labels are 0. Each file is
    /// taken once however many links lead to it, symbolic-link loops are followed once, files that are not regular
    /// (pipes, devices) are left out, and so is the folder <paramref name="exclude"/> (a run's own output folder
    /// inside its data folder).</summary>
    public static ImageFolder Unlabelled(string root, int? limit = null, string? exclude = null)
    {
        CheckRoot(root);
        var files = ImageFiles(root, exclude);
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
            var files = ImageFiles(dir, null);
            if (files.Count == 0) throw new InvalidDataException($"Class folder '{dir}' contains no images");
            if (limitPerClass is > 0) files = Subsample(files, limitPerClass.Value);
            samples.AddRange(files.Select(f => new ImageSample(f, label)));
        }
        return new ImageFolder(root, samples, classes.ToList());
    }

    /// <summary>Image files under <paramref name="root"/> in ordinal order: every folder (by its resolved path) visited
    /// once, every file (by its resolved path) listed once under its first name, non-regular files (pipes, devices) skipped.</summary>
    static List<string> ImageFiles(string root, string? exclude)
    {
        var excluded = exclude is null ? null : Resolve(exclude);
        var visited = new HashSet<string>(StringComparer.Ordinal);
        var byTarget = new Dictionary<string, string>(StringComparer.Ordinal);
        var pending = new Queue<string>();
        pending.Enqueue(root);
        while (pending.Count > 0)
        {
            var dir = pending.Dequeue();
            var real = Resolve(dir);
            if (real is null || real == excluded || !visited.Add(real)) continue;
            List<FileSystemInfo> entries;
            try { entries = new DirectoryInfo(dir).EnumerateFileSystemInfos().OrderBy(e => e.Name, StringComparer.Ordinal).ToList(); }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException) { continue; }
            foreach (var entry in entries)
            {
                var path = Path.Combine(dir, entry.Name);
                if (entry is DirectoryInfo) { pending.Enqueue(path); continue; }
                if (!Extensions.Contains(Path.GetExtension(path)) || !FileKind.IsRegularFile(path) || Resolve(path) is not { } target) continue;
                if (!byTarget.TryGetValue(target, out var first) || string.CompareOrdinal(path, first) < 0) byTarget[target] = path;
            }
        }
        return byTarget.Values.Order(StringComparer.Ordinal).ToList();
    }

    [DllImport("libc", EntryPoint = "realpath", SetLastError = true)]
    static extern IntPtr RealPath(string path, IntPtr resolved);

    [DllImport("libc", EntryPoint = "free")]
    static extern void Free(IntPtr pointer);

    /// <summary>The canonical path (links resolved) or null when it cannot be resolved (a dangling link, a loop).</summary>
    static string? Resolve(string path)
    {
        if (!OperatingSystem.IsLinux() && !OperatingSystem.IsMacOS()) return Path.GetFullPath(path);
        var p = RealPath(path, IntPtr.Zero);
        if (p == IntPtr.Zero) return null;
        try { return Marshal.PtrToStringUTF8(p); }
        finally { Free(p); }
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
