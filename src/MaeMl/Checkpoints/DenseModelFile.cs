using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using MaeMl.Files;

namespace MaeMl.Checkpoints;

/// <summary>What a dense model file holds besides the weights.</summary>
/// <param name="Kind">The task: <c>segmentation</c> or <c>detection</c>.</param>
/// <param name="Config">The task's architecture as JSON (read by the task's own file type, e.g. <c>DetectionModelFile</c>).</param>
/// <param name="ClassNames">Names of the output classes (may be empty).</param>
/// <param name="IgnoreIndex">Segmentation: the label that means "not labelled".</param>
/// <param name="Training">What the trainer recorded (epoch, step, seed, options); empty for a finished model or an older file.</param>
/// <param name="HasOptimizer">True when the file holds an optimizer state (a resumable run's checkpoint).</param>
public sealed record DenseModelHeader(string Kind, JsonNode Config, IReadOnlyList<string> ClassNames, int IgnoreIndex = 255,
    JsonObject? Training = null, bool HasOptimizer = false);

/// <summary>
/// Trained detection and segmentation models in MaeMl's one model-file layout (<see cref="MaeCheckpoint"/>: magic, JSON header,
/// checksummed weight and optimizer sections, written atomically), header <c>"format": "maeml-detection"</c> or
/// <c>"maeml-segmentation"</c> with the task's architecture (<c>config</c>), <c>class_names</c>, <c>ignore_index</c> and the
/// training state. The same file is a run's resumable checkpoint (with the optimizer) and the finished model (without).
/// The task folders read and write their own models through it (<c>Detection.DetectionModelFile</c>,
/// <c>Segmentation.SegmentationModelFile</c>). Files of the earlier dense container (magic <c>maeml-dense-1</c>) still load.
/// </summary>
public static class DenseModelFile
{
    const string LegacyMagic = "maeml-dense-1";

    static string ConfigProperty(string kind) => kind switch
    {
        "segmentation" => "Segmentation",
        "detection" => "Detection",
        _ => throw new ArgumentException($"Unknown dense task '{kind}'"),
    };

    /// <summary>The header <c>format</c> of task <paramref name="kind"/> (<c>maeml-detection</c>, <c>maeml-segmentation</c>).</summary>
    internal static string FormatName(string kind) => "maeml-" + kind;

    /// <summary>The task of a header <c>format</c> value, or null when it names none.</summary>
    internal static string? KindOf(string? format) => format switch { "maeml-detection" => "detection", "maeml-segmentation" => "segmentation", _ => null };

    /// <summary>Writes <paramref name="model"/> with its header, <paramref name="training"/> and, for a resumable checkpoint, the optimizer state.
    /// Throws <see cref="NonFiniteWeightsException"/>, leaving any existing file as it was, when a weight or moment is not finite.</summary>
    public static void Write(string path, DenseModelHeader header, nn.Module model, JsonObject? training = null, OptimizerHelper? optimizer = null)
    {
        ConfigProperty(header.Kind);
        var json = new JsonObject
        {
            ["format"] = FormatName(header.Kind),
            ["format_version"] = 1,
            ["config"] = header.Config.DeepClone(),
            ["class_names"] = new JsonArray(header.ClassNames.Select(n => (JsonNode?)JsonValue.Create(n)).ToArray()),
            ["ignore_index"] = header.IgnoreIndex,
            ["training"] = (training ?? header.Training)?.DeepClone() ?? new JsonObject(),
            ["has_optimizer"] = optimizer is not null,
        };
        MaeCheckpoint.Write(path, json, model, optimizer);
    }

    /// <summary>True when <paramref name="path"/> is a regular file holding a detection or segmentation model (either layout).</summary>
    public static bool IsDenseModelFile(string path)
    {
        if (!File.Exists(path) || !Files.FileKind.IsRegularFile(path)) return false;
        try
        {
            if (MaeCheckpoint.IsCheckpoint(path))
            {
                using var reader = MaeCheckpoint.OpenFile(path);
                return KindOf(MaeCheckpoint.FormatOf(MaeCheckpoint.ReadHeaderJson(reader, path))) is not null;
            }
            using var r = new BinaryReader(File.OpenRead(path), Encoding.UTF8);
            if (r.BaseStream.Length < LegacyMagic.Length + 1 || r.ReadByte() != LegacyMagic.Length) return false;
            return Encoding.UTF8.GetString(r.ReadBytes(LegacyMagic.Length)) == LegacyMagic;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or InvalidDataException) { return false; }
    }

    /// <summary>Reads the header only.</summary>
    /// <exception cref="InvalidDataException">Not a dense model file.</exception>
    public static DenseModelHeader ReadHeader(string path)
    {
        using var r = Open(path);
        return ReadHeader(r, path, out _);
    }

    static BinaryReader Open(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"Model file '{path}' does not exist", path);
        Files.FileKind.RequireRegular(path, "Model file");
        return new BinaryReader(File.OpenRead(path), Encoding.UTF8);
    }

    /// <summary>The header of either layout; <paramref name="json"/> is the new layout's JSON (null for a legacy file).</summary>
    static DenseModelHeader ReadHeader(BinaryReader r, string path, out JsonObject? json)
    {
        json = null;
        if (MaeCheckpoint.IsCheckpoint(path))
        {
            json = MaeCheckpoint.ReadHeaderJson(r, path);
            var format = MaeCheckpoint.FormatOf(json);
            var kind = KindOf(format) ?? throw new InvalidDataException(
                $"'{path}' is {MaeCheckpoint.DescribeFormat(format)}, not a detection/segmentation model (written by detect-train or segment-train)");
            try
            {
                var config = json["config"] ?? throw new InvalidDataException($"'{path}': the header has no {kind} configuration");
                var names = json["class_names"]?.AsArray().Select(n => n?.GetValue<string>() ?? "").ToList() ?? [];
                return new DenseModelHeader(kind, config, names, json["ignore_index"]?.GetValue<int>() ?? 255,
                    json["training"]?.AsObject() ?? new JsonObject(), json["has_optimizer"]?.GetValue<bool>() ?? false);
            }
            catch (Exception e) when (e is JsonException or InvalidOperationException or FormatException)
            {
                throw new InvalidDataException($"'{path}': unreadable {kind} model header ({e.Message})", e);
            }
        }
        string magic;
        try { magic = r.ReadString(); } catch (Exception e) when (e is EndOfStreamException or IOException) { magic = ""; }
        if (magic != LegacyMagic) throw new InvalidDataException($"'{path}' is not a MaeMl detection/segmentation model (written by segment-train or detect-train)");
        try
        {
            var legacy = JsonNode.Parse(r.ReadString()) as JsonObject ?? throw new InvalidDataException($"'{path}': the header is not a JSON object");
            var kind = legacy["Kind"]?.GetValue<string>() ?? throw new InvalidDataException($"'{path}': the header names no task");
            var config = legacy[ConfigProperty(kind)] ?? throw new InvalidDataException($"'{path}': the header has no {kind} configuration");
            var names = legacy["ClassNames"]?.AsArray().Select(n => n?.GetValue<string>() ?? "").ToList() ?? [];
            return new DenseModelHeader(kind, config, names, legacy["IgnoreIndex"]?.GetValue<int>() ?? 255, new JsonObject());
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException or FormatException or EndOfStreamException or ArgumentException)
        {
            throw new InvalidDataException($"'{path}': unreadable dense model header ({e.Message})", e);
        }
    }

    /// <summary>Reads a model of task <paramref name="kind"/> in one pass: the header, a model built from its configuration, the weights.</summary>
    /// <exception cref="InvalidDataException">Not a dense model file, or one of another task.</exception>
    public static (TModel Model, DenseModelHeader Header) Load<TModel>(string path, string kind, Func<JsonNode, TModel> build) where TModel : nn.Module
    {
        using var r = Open(path);
        var header = ReadHeader(r, path, out var json);
        if (header.Kind != kind) throw new InvalidDataException($"'{path}' holds a {header.Kind} model, not a {kind} model");
        var model = build(header.Config);
        try
        {
            if (json is null) model.load(r);
            else MaeCheckpoint.ReadSections(r, path, json, model, optimizer: null);
        }
        catch { model.Dispose(); throw; }
        model.eval();
        return (model, header);
    }

    /// <summary>Restores the weights and, when given and stored, the optimizer state into existing objects (to resume a run); returns the header.</summary>
    /// <exception cref="InvalidDataException">Not a dense model file, one of another task, or weights that do not fit <paramref name="model"/>.</exception>
    public static DenseModelHeader LoadInto(string path, string kind, nn.Module model, OptimizerHelper? optimizer = null)
    {
        using var r = Open(path);
        var header = ReadHeader(r, path, out var json);
        if (header.Kind != kind) throw new InvalidDataException($"'{path}' holds a {header.Kind} model, not a {kind} model");
        if (json is null)
        {
            try { model.load(r); }
            catch (Exception e) when (e is ArgumentException or InvalidOperationException or IOException or EndOfStreamException)
            { throw new InvalidDataException($"'{path}': its weights do not fit this model: {e.Message}", e); }
        }
        else MaeCheckpoint.ReadSections(r, path, json, model, optimizer);
        return header;
    }
}
