using System.Text.Json;

namespace MaeMl.Detection;

/// <summary>COCO detection JSON (<c>images</c>, <c>annotations</c> with <c>bbox</c> [x, y, w, h] in pixels, <c>categories</c>).</summary>
public static class CocoAnnotations
{
    /// <summary>Boxes per image file name, and class names; category ids are renumbered 0.. in ascending id order. Crowd regions are skipped.</summary>
    /// <exception cref="InvalidDataException">The JSON lacks a needed field.</exception>
    public static (Dictionary<string, BoxAnnotation[]> Boxes, List<string> Classes) Read(string path)
    {
        using var doc = JsonDocument.Parse(File.ReadAllBytes(path));
        var root = doc.RootElement;
        JsonElement Array(string name) => root.TryGetProperty(name, out var e) && e.ValueKind == JsonValueKind.Array ? e
            : throw new InvalidDataException($"{path}: no '{name}' array (not a COCO detection file)");
        var categories = Array("categories").EnumerateArray().Select(c => (Id: c.GetProperty("id").GetInt64(), Name: c.GetProperty("name").GetString() ?? ""))
            .OrderBy(c => c.Id).ToList();
        var labelOf = categories.Select((c, i) => (c.Id, i)).ToDictionary(x => x.Id, x => x.i);
        var files = Array("images").EnumerateArray().ToDictionary(i => i.GetProperty("id").GetInt64(), i => i.GetProperty("file_name").GetString() ?? "");
        var boxes = files.Values.Distinct().ToDictionary(f => f, _ => new List<BoxAnnotation>());
        foreach (var a in Array("annotations").EnumerateArray())
        {
            if (a.TryGetProperty("iscrowd", out var crowd) && crowd.GetInt32() == 1) continue;
            var b = a.GetProperty("bbox").EnumerateArray().Select(v => v.GetSingle()).ToArray();
            if (b.Length != 4) throw new InvalidDataException($"{path}: an annotation's bbox has {b.Length} numbers, not 4");
            long imageId = a.GetProperty("image_id").GetInt64(), categoryId = a.GetProperty("category_id").GetInt64();
            if (!files.TryGetValue(imageId, out var file)) throw new InvalidDataException($"{path}: annotation for unknown image id {imageId}");
            if (!labelOf.TryGetValue(categoryId, out var label)) throw new InvalidDataException($"{path}: annotation with unknown category id {categoryId}");
            boxes[file].Add(new BoxAnnotation(b[0], b[1], b[0] + b[2], b[1] + b[3], label));
        }
        return (boxes.ToDictionary(kv => kv.Key, kv => kv.Value.ToArray()), categories.Select(c => c.Name).ToList());
    }
}
