namespace MaeMl.Cli;

/// <summary>Images in class folders (<c>DIR/class/*.jpg|png|...</c>), labelled by folder name.</summary>
public static class ImageFolderListing
{
    static readonly HashSet<string> Extensions = new(StringComparer.OrdinalIgnoreCase) { ".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp" };

    /// <summary>(path, label) pairs in a fixed order; with <paramref name="limit"/> &gt; 0 a seeded random subset of that size.</summary>
    public static List<(string Path, string Label)> List(string dir, int limit = 0, int seed = 0)
    {
        if (!Directory.Exists(dir)) throw new CliException($"image folder '{dir}' does not exist");
        var items = Directory.GetDirectories(dir).OrderBy(d => d, StringComparer.Ordinal)
            .SelectMany(d => Directory.GetFiles(d).Where(f => Extensions.Contains(Path.GetExtension(f))).OrderBy(f => f, StringComparer.Ordinal)
                .Select(f => (Path: f, Label: Path.GetFileName(d))))
            .ToList();
        if (items.Count == 0) throw new CliException($"no images in class folders under '{dir}' (expected DIR/<class>/<image>.jpg)");
        if (limit > 0 && limit < items.Count)
        {
            var rng = new Random(seed);
            items = items.OrderBy(_ => rng.Next()).Take(limit).ToList();
        }
        return items;
    }
}
