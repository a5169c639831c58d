using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using TorchSharp;
using static TorchSharp.torch;
using MaeMl.Files;

namespace MaeMl.Checkpoints;

/// <summary>What a dense model file holds besides the weights.</summary>
/// <param name="Kind">The task: <c>segmentation</c> or <c>detection</c>.</param>
/// <param name="Config">The task's architecture as JSON (read by the task's own file type, e.g. <c>DetectionModelFile</c>).</param>
/// <param name="ClassNames">Names of the output classes (may be empty).</param>
/// <param name="IgnoreIndex">Segmentation: the label that means "not labelled".</param>
public sealed record DenseModelHeader(string Kind, JsonNode Config, IReadOnlyList<string> ClassNames, int IgnoreIndex = 255);

/// <summary>
/// The container of trained detection and segmentation models (written atomically): a magic string, a JSON header (task, its
/// architecture, classes), then the TorchSharp weights. The task folders read and write their own models through it
/// (<c>Detection.DetectionModelFile</c>, <c>Segmentation.SegmentationModelFile</c>). The JSON keeps the layout of earlier
/// versions (<c>Kind</c>, a property named after the task holding its configuration, <c>ClassNames</c>, <c>IgnoreIndex</c>),
/// so their files still load.
/// </summary>
public static class DenseModelFile
{
    const string Magic = "maeml-dense-1";

    static string ConfigProperty(string kind) => kind switch
    {
        "segmentation" => "Segmentation",
        "detection" => "Detection",
        _ => throw new ArgumentException($"Unknown dense task '{kind}'"),
    };

    /// <summary>Writes <paramref name="model"/> with its header.</summary>
    public static void Write(string path, DenseModelHeader header, nn.Module model) => AtomicFile.Write(path, s =>
    {
        using var w = new BinaryWriter(s, Encoding.UTF8, leaveOpen: true);
        w.Write(Magic);
        var json = new JsonObject
        {
            ["Kind"] = header.Kind,
            ["Segmentation"] = header.Kind == "segmentation" ? header.Config.DeepClone() : null,
            ["Detection"] = header.Kind == "detection" ? header.Config.DeepClone() : null,
            ["ClassNames"] = new JsonArray(header.ClassNames.Select(n => (JsonNode?)JsonValue.Create(n)).ToArray()),
            ["IgnoreIndex"] = header.IgnoreIndex,
        };
        w.Write(json.ToJsonString());
        model.save(w);
    });

    /// <summary>True when <paramref name="path"/> is a regular file that starts with the dense model magic (the header is not checked).</summary>
    public static bool IsDenseModelFile(string path)
    {
        if (!File.Exists(path) || !Files.FileKind.IsRegularFile(path)) return false;
        try
        {
            using var r = new BinaryReader(File.OpenRead(path), Encoding.UTF8);
            if (r.BaseStream.Length < Magic.Length + 1 || r.ReadByte() != Magic.Length) return false;
            return Encoding.UTF8.GetString(r.ReadBytes(Magic.Length)) == Magic;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { return false; }
    }

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
        try
        {
            var json = JsonNode.Parse(r.ReadString()) as JsonObject ?? throw new InvalidDataException($"'{path}': the header is not a JSON object");
            var kind = json["Kind"]?.GetValue<string>() ?? throw new InvalidDataException($"'{path}': the header names no task");
            var config = json[ConfigProperty(kind)] ?? throw new InvalidDataException($"'{path}': the header has no {kind} configuration");
            var names = json["ClassNames"]?.AsArray().Select(n => n?.GetValue<string>() ?? "").ToList() ?? [];
            return new DenseModelHeader(kind, config, names, json["IgnoreIndex"]?.GetValue<int>() ?? 255);
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException or FormatException or EndOfStreamException or ArgumentException)
        {
            throw new InvalidDataException($"'{path}': unreadable dense model header ({e.Message})", e);
        }
    }

    /// <summary>Reads a model of task <paramref name="kind"/>: the header, a model built from its configuration, the weights.</summary>
    /// <exception cref="InvalidDataException">Not a dense model file, or one of another task.</exception>
    public static (TModel Model, DenseModelHeader Header) Load<TModel>(string path, string kind, Func<JsonNode, TModel> build) where TModel : nn.Module
    {
        using var r = new BinaryReader(File.OpenRead(path), Encoding.UTF8);
        var header = ReadHeader(r, path);
        if (header.Kind != kind) throw new InvalidDataException($"'{path}' holds a {header.Kind} model, not a {kind} model");
        var model = build(header.Config);
        model.load(r);
        model.eval();
        return (model, header);
    }
}
