using System.Text;
using System.Text.Json;
using MaeMl.Checkpoints;
using MaeMl.Detection;
using MaeMl.Segmentation;
using TorchSharp;
using static TorchSharp.torch;

namespace MaeMl.Heads;

/// <summary>What a dense model file holds besides the weights.</summary>
/// <param name="Kind"><c>segmentation</c> or <c>detection</c>.</param>
/// <param name="Segmentation">Architecture of a segmentation model, else null.</param>
/// <param name="Detection">Architecture of a detection model, else null.</param>
/// <param name="ClassNames">Names of the output classes (may be empty).</param>
/// <param name="IgnoreIndex">Segmentation: the label that means "not labelled".</param>
public sealed record DenseModelHeader(string Kind, SegmentationConfig? Segmentation, DetectionConfig? Detection, IReadOnlyList<string> ClassNames, int IgnoreIndex = 255);

/// <summary>
/// A trained segmentation or detection model in one file (written atomically): a magic string, the JSON
/// <see cref="DenseModelHeader"/> (architecture, classes), then the TorchSharp weights.
/// </summary>
public static class DenseModelFile
{
    const string Magic = "maeml-dense-1";
    static readonly JsonSerializerOptions Json = new() { WriteIndented = false };

    public static void Save(SegmentationModel model, string path, IReadOnlyList<string> classNames, int ignoreIndex) =>
        Write(path, new DenseModelHeader("segmentation", model.Config, null, classNames, ignoreIndex), model);

    public static void Save(DetectionModel model, string path, IReadOnlyList<string> classNames) =>
        Write(path, new DenseModelHeader("detection", null, model.Config, classNames), model);

    static void Write(string path, DenseModelHeader header, nn.Module model) => AtomicFile.Write(path, s =>
    {
        using var w = new BinaryWriter(s, Encoding.UTF8, leaveOpen: true);
        w.Write(Magic);
        w.Write(JsonSerializer.Serialize(header, Json));
        model.save(w);
    });

    /// <summary>Reads the header only.</summary>
    /// <exception cref="InvalidDataException">Not a dense model file.</exception>
    public static DenseModelHeader ReadHeader(string path)
    {
        using var r = new BinaryReader(File.OpenRead(path), Encoding.UTF8);
        return ReadHeader(r, path);
    }

    static DenseModelHeader ReadHeader(BinaryReader r, string path)
    {
        string magic;
        try { magic = r.ReadString(); } catch (Exception e) when (e is EndOfStreamException or IOException) { magic = ""; }
        if (magic != Magic) throw new InvalidDataException($"'{path}' is not a MaeMl detection/segmentation model (written by segment-train or detect-train)");
        return JsonSerializer.Deserialize<DenseModelHeader>(r.ReadString(), Json) ?? throw new InvalidDataException($"'{path}': empty header");
    }

    public static (SegmentationModel Model, DenseModelHeader Header) LoadSegmentation(string path)
    {
        using var r = new BinaryReader(File.OpenRead(path), Encoding.UTF8);
        var header = ReadHeader(r, path);
        if (header.Segmentation is null) throw new InvalidDataException($"'{path}' holds a {header.Kind} model, not a segmentation model");
        var model = new SegmentationModel(header.Segmentation);
        model.load(r);
        model.eval();
        return (model, header);
    }

    public static (DetectionModel Model, DenseModelHeader Header) LoadDetection(string path)
    {
        using var r = new BinaryReader(File.OpenRead(path), Encoding.UTF8);
        var header = ReadHeader(r, path);
        if (header.Detection is null) throw new InvalidDataException($"'{path}' holds a {header.Kind} model, not a detection model");
        var model = new DetectionModel(header.Detection);
        model.load(r);
        model.eval();
        return (model, header);
    }
}
