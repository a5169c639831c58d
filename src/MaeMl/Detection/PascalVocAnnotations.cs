using System.Globalization;
using System.Xml.Linq;

namespace MaeMl.Detection;

/// <summary>Pascal VOC XML: one file per image with <c>filename</c>, <c>size</c> and <c>object</c>s (<c>name</c>, <c>bndbox</c> xmin ymin xmax ymax, 1-based).</summary>
public static class PascalVocAnnotations
{
    /// <summary>Reads one file. Class names are looked up in <paramref name="classes"/> and appended when new (so one list numbers a whole set).
    /// Objects marked <c>difficult</c> are skipped unless <paramref name="includeDifficult"/>.</summary>
    /// <exception cref="InvalidDataException">The XML lacks a needed element (named in the message).</exception>
    public static (string FileName, BoxAnnotation[] Boxes) Read(string path, List<string> classes, bool includeDifficult = false)
    {
        var root = XDocument.Load(path).Root ?? throw new InvalidDataException($"{path}: empty XML");
        var fileName = (string?)root.Element("filename") ?? Path.GetFileNameWithoutExtension(path) + ".jpg";
        var boxes = new List<BoxAnnotation>();
        foreach (var obj in root.Elements("object"))
        {
            if (!includeDifficult && (string?)obj.Element("difficult") == "1") continue;
            var name = ((string?)obj.Element("name"))?.Trim() ?? throw new InvalidDataException($"{path}: an <object> has no <name>");
            var box = obj.Element("bndbox") ?? throw new InvalidDataException($"{path}: object '{name}' has no <bndbox>");
            float Get(string tag) => float.TryParse((string?)box.Element(tag), NumberStyles.Float, CultureInfo.InvariantCulture, out var v) ? v
                : throw new InvalidDataException($"{path}: object '{name}' has no numeric <{tag}>");
            int label = classes.IndexOf(name);
            if (label < 0) { classes.Add(name); label = classes.Count - 1; }
            boxes.Add(new BoxAnnotation(Get("xmin") - 1, Get("ymin") - 1, Get("xmax"), Get("ymax"), label));
        }
        return (fileName, boxes.ToArray());
    }
}
