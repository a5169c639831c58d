using System.Globalization;

namespace MaeMl.Detection;

/// <summary>YOLO txt labels: one file per image (same stem), one line per box: <c>class cx cy w h</c>, coordinates relative to the image size.</summary>
public static class YoloAnnotations
{
    /// <summary>Boxes in pixels of a <paramref name="width"/> x <paramref name="height"/> image; a missing file means no objects.</summary>
    /// <exception cref="InvalidDataException">A line is not five numbers (the message gives file and line).</exception>
    public static BoxAnnotation[] Read(string path, int width, int height)
    {
        if (!File.Exists(path)) return [];
        var boxes = new List<BoxAnnotation>();
        int lineNumber = 0;
        foreach (var line in File.ReadLines(path))
        {
            lineNumber++;
            var parts = line.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries);
            if (parts.Length == 0) continue;
            if (parts.Length < 5 || !int.TryParse(parts[0], CultureInfo.InvariantCulture, out int label) || label < 0
                || !TryFloats(parts.AsSpan(1, 4), out var v))
                throw new InvalidDataException($"{path}:{lineNumber}: expected 'class cx cy w h' (class a non-negative integer, the rest numbers), got '{line}'");
            float cx = v[0] * width, cy = v[1] * height, w = v[2] * width, h = v[3] * height;
            boxes.Add(new BoxAnnotation(cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2, label));
        }
        return boxes.ToArray();
    }

    static bool TryFloats(ReadOnlySpan<string> parts, out float[] values)
    {
        values = new float[parts.Length];
        for (int i = 0; i < parts.Length; i++)
            if (!float.TryParse(parts[i], NumberStyles.Float, CultureInfo.InvariantCulture, out values[i])) return false;
        return true;
    }

    /// <summary>The label file of an image: <c>labelDir/stem.txt</c>.</summary>
    public static string LabelPath(string labelDir, string imagePath) => Path.Combine(labelDir, Path.GetFileNameWithoutExtension(imagePath) + ".txt");
}
