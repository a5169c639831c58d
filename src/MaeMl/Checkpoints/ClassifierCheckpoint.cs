using System.Text.Json;
using System.Text.Json.Nodes;
using MaeMl.Model;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace MaeMl.Checkpoints;

/// <summary>
/// A fine-tuned or linear-probed ViT classifier in MaeMl's checkpoint layout (same magic and sections as
/// <see cref="MaeCheckpoint"/>, header <c>"format": "maeml-classifier"</c>): the encoder configuration (<c>config</c>), the
/// classifier settings and class names, the training state, the <see cref="VisionTransformer"/> weights (official
/// <c>models_vit</c> names) and optionally the optimizer state. Written atomically. <see cref="Interop.MaeModelFile.LoadClassifier(string, Interop.MaeLoadOptions?)"/>
/// reads it too.
/// </summary>
public static class ClassifierCheckpoint
{
    /// <summary>Value of the header's <c>format</c> field.</summary>
    public const string FormatName = "maeml-classifier";

    /// <summary>Contents of the JSON header.</summary>
    /// <param name="Config">Architecture: encoder, number of classes, pooling.</param>
    /// <param name="ClassNames">Class names in label order (may be empty when unknown).</param>
    /// <param name="Training">Whatever the trainer recorded (epoch, step, seed, accuracy, options).</param>
    /// <param name="HasOptimizer">True when an optimizer state is stored.</param>
    public sealed record Header(VitClassifierConfig Config, IReadOnlyList<string> ClassNames, JsonObject Training, bool HasOptimizer);

    /// <summary>Writes <paramref name="model"/> (and the optimizer state when given) to <paramref name="path"/> atomically.</summary>
    public static void Save(string path, VisionTransformer model, IReadOnlyList<string> classNames, JsonObject? training = null, OptimizerHelper? optimizer = null)
    {
        if (classNames.Count != 0 && classNames.Count != model.Config.NumClasses)
            throw new ArgumentException($"{classNames.Count} class names for a head of {model.Config.NumClasses} classes");
        var header = new JsonObject
        {
            ["format"] = FormatName,
            ["format_version"] = 1,
            ["config"] = JsonSerializer.SerializeToNode(model.Config.Encoder),
            ["classifier"] = new JsonObject { ["num_classes"] = model.Config.NumClasses, ["global_pool"] = model.Config.GlobalPool },
            ["class_names"] = new JsonArray(classNames.Select(n => (JsonNode?)JsonValue.Create(n)).ToArray()),
            ["training"] = training?.DeepClone() ?? new JsonObject(),
            ["has_optimizer"] = optimizer is not null,
        };
        MaeCheckpoint.Write(path, header, model, optimizer);
    }

    /// <summary>True when <paramref name="path"/> is a MaeMl checkpoint holding a classifier.</summary>
    public static bool IsClassifierCheckpoint(string path)
    {
        if (!MaeCheckpoint.IsCheckpoint(path)) return false;
        using var reader = MaeCheckpoint.OpenFile(path);
        return MaeCheckpoint.ReadHeaderJson(reader, path)["format"]?.GetValue<string>() == FormatName;
    }

    /// <summary>Reads and checks the header only (no weights); throws <see cref="InvalidDataException"/> for a MAE checkpoint,
    /// another file or a corrupt header.</summary>
    public static Header ReadHeader(string path)
    {
        using var reader = MaeCheckpoint.OpenFile(path);
        return ReadHeader(reader, path, out _);
    }

    /// <summary>A new classifier of the stored configuration with the stored weights, and the header.</summary>
    public static (VisionTransformer Model, Header Header) Load(string path)
    {
        using var reader = MaeCheckpoint.OpenFile(path);
        var header = ReadHeader(reader, path, out var json);
        var weights = MaeCheckpoint.ReadModelSection(reader, path, json, header.Config.Encoder, withDecoder: false);
        var model = new VisionTransformer(header.Config);
        try { MaeCheckpoint.LoadWeights(weights, path, model); }
        catch { model.Dispose(); throw; }
        return (model, header);
    }

    /// <summary>Restores weights (and optimizer state, when given and stored) into existing objects, e.g. to resume; returns the header.</summary>
    public static Header LoadInto(string path, VisionTransformer model, OptimizerHelper? optimizer = null)
    {
        using var reader = MaeCheckpoint.OpenFile(path);
        var header = ReadHeader(reader, path, out var json);
        static VitClassifierConfig Plain(VitClassifierConfig c) => c with { Encoder = c.Encoder with { DropPath = 0 } };
        if (Plain(header.Config) != Plain(model.Config))
            throw new InvalidDataException($"Checkpoint '{path}' holds a different classifier ({Describe(header.Config)}) than the model ({Describe(model.Config)})");
        MaeCheckpoint.ReadSections(reader, path, json, model, optimizer);
        return header;
    }

    static string Describe(VitClassifierConfig c) =>
        $"img {c.Encoder.ImageSize}, patch {c.Encoder.PatchSize}, {c.Encoder.EmbedDim}x{c.Encoder.Depth}/{c.Encoder.NumHeads}h, {c.NumClasses} classes, {(c.GlobalPool ? "global pool" : "cls token")}";

    static Header ReadHeader(BinaryReader reader, string path, out JsonObject node)
    {
        node = MaeCheckpoint.ReadHeaderJson(reader, path);
        var format = MaeCheckpoint.FormatOf(node);
        if (format != FormatName)
            throw new InvalidDataException($"'{path}' is {MaeCheckpoint.DescribeFormat(format)}, not a classifier" +
                (format is null or MaeCheckpoint.FormatName ? $": fine-tune it first (maeml finetune --weights {path})" : ""));
        try
        {
            var encoder = MaeCheckpoint.ValidConfig(node["config"].Deserialize<MaeConfig>(), path);
            var cls = node["classifier"]?.AsObject() ?? throw new InvalidDataException($"'{path}': no classifier settings");
            var config = new VitClassifierConfig(encoder, cls["num_classes"]!.GetValue<int>(), cls["global_pool"]!.GetValue<bool>());
            if (config.NumClasses is <= 0 or > 1_000_000) throw new InvalidDataException($"Checkpoint '{path}' has a corrupt classifier header: {config.NumClasses} classes");
            var names = node["class_names"]?.AsArray().Select(n => n!.GetValue<string>()).ToList() ?? new List<string>();
            return new Header(config, names, node["training"]?.AsObject() ?? new JsonObject(), node["has_optimizer"]?.GetValue<bool>() ?? false);
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException or NullReferenceException or FormatException)
        {
            throw new InvalidDataException($"Checkpoint '{path}' has a corrupt classifier header: {e.Message}");
        }
    }
}
