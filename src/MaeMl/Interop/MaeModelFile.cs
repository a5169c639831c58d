using MaeMl.Checkpoints;
using MaeMl.Model;
using TorchSharp;
using static TorchSharp.torch;

namespace MaeMl.Interop;

/// <summary>Tensor names to write: the official MAE / timm ones, or Hugging Face ViTMAE ones (qkv split).</summary>
public enum StateDictNaming
{
    /// <summary><c>patch_embed.proj</c>, <c>blocks.N.attn.qkv</c>, ... as <c>models_mae.py</c> and <c>models_vit.py</c> name them.</summary>
    Official,
    /// <summary><c>vit.embeddings...</c>, <c>vit.encoder.layer.N.attention.attention.query</c>, ... as <c>ViTMAEForPreTraining</c>.</summary>
    HuggingFace,
}

/// <summary>One tensor of a weight file as the file names it.</summary>
public sealed record TensorInfo(string Name, string DType, long[] Shape)
{
    /// <summary>"name dtype [shape]", as <c>maeml inspect</c> lists it.</summary>
    public override string ToString() => $"{Name} {DType} [{string.Join(", ", Shape)}]";
}

/// <summary>What <see cref="MaeModelFile.Inspect"/> found in a file.</summary>
/// <param name="Path">The file.</param>
/// <param name="Format">Its format, from its content.</param>
/// <param name="Naming">Official or Hugging Face tensor names.</param>
/// <param name="Tensors">Tensors under the file's own names.</param>
/// <param name="Notes">Format, naming, other entries, where settings came from.</param>
/// <param name="Shapes">Architecture facts read from the shapes, or null when the file is not a ViT.</param>
/// <param name="Config">The inferred MAE configuration, or null (then <paramref name="ConfigProblem"/> says why).</param>
/// <param name="ConfigProblem">Why no configuration could be inferred (e.g. heads unknown), or null.</param>
public sealed record ModelFileInfo(string Path, ModelFileFormat Format, StateDictNaming Naming, IReadOnlyList<TensorInfo> Tensors,
                                   IReadOnlyList<string> Notes, InferredShapes? Shapes, MaeConfig? Config, string? ConfigProblem);

/// <summary>
/// The one entry point for MAE weight files, whatever their origin: MaeMl checkpoints (<c>.maeml</c>), official
/// facebookresearch/mae <c>torch.save</c> files (<c>mae_pretrain_vit_*.pth</c>, <c>mae_visualize_vit_*.pth</c>,
/// <c>mae_finetuned_vit_*.pth</c>, and training checkpoints), and safetensors or <c>.bin</c> files under official or
/// Hugging Face ViTMAE names. The format is recognised from the content; the architecture from the tensor shapes
/// (see <see cref="MaeLoadOptions"/> for the heads). Pickles are checked by <see cref="SafePickleValidator"/> first: no
/// code in a file is ever run.
/// </summary>
public static class MaeModelFile
{
    /// <summary>The tensors of any supported file under official names (the caller disposes them), plus what was found out on the way.</summary>
    public static Dictionary<string, Tensor> ReadStateDict(string path, MaeLoadOptions? options = null) =>
        Read(path, options ?? new MaeLoadOptions(), new List<string>(), out _, out _, out _);

    static Dictionary<string, Tensor> Read(string path, MaeLoadOptions options, List<string> notes,
                                           out ModelFileFormat format, out StateDictNaming naming, out MaeConfig? fileConfig, List<TensorInfo>? listing = null)
    {
        format = ModelFileFormats.Detect(path);
        fileConfig = null;
        naming = StateDictNaming.Official;
        Dictionary<string, Tensor> raw;
        switch (format)
        {
            case ModelFileFormat.MaeMl when ClassifierCheckpoint.IsClassifierCheckpoint(path):
            {
                var (classifier, header) = ClassifierCheckpoint.Load(path);
                using (classifier) raw = classifier.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value.detach().clone(), StringComparer.Ordinal);
                fileConfig = header.Config.Encoder;
                notes.Add($"format: MaeMl classifier checkpoint ({header.Config.NumClasses} classes; configuration from its header)");
                break;
            }
            case ModelFileFormat.MaeMl:
            {
                fileConfig = MaeCheckpoint.ReadHeader(path).Config;
                using var model = MaeCheckpoint.LoadModel(path);
                raw = model.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value.detach().clone(), StringComparer.Ordinal);
                notes.Add("format: MaeMl checkpoint (configuration from its header)");
                break;
            }
            case ModelFileFormat.Safetensors:
                raw = SafetensorsFile.Read(path);
                notes.Add("format: safetensors");
                break;
            default:
            {
                var contents = PyTorchCheckpointFile.Read(path, options.CheckpointKey);
                raw = contents.StateDict;
                notes.Add($"format: torch.save archive, state dict {(contents.Key is null ? "at the top level" : $"under '{contents.Key}'")}" +
                          (contents.OtherEntries.Count > 0 ? $"; other entries not loaded: {string.Join(", ", contents.OtherEntries)}" : ""));
                break;
            }
        }
        listing?.AddRange(raw.Select(kv => new TensorInfo(kv.Key, kv.Value.dtype.ToString(), kv.Value.shape)));
        if (!HuggingFaceViTMae.IsHuggingFace(raw.Keys)) return raw;
        naming = StateDictNaming.HuggingFace;
        fileConfig = HuggingFaceViTMae.ReadConfigJson(path);
        notes.Add($"naming: Hugging Face ViTMAE ({(raw.Keys.Any(k => k.StartsWith("vit.", StringComparison.Ordinal)) ? "ViTMAEForPreTraining" : "ViTMAEModel")}), " +
                  $"query/key/value fused into qkv{(fileConfig is null ? "; no config.json beside it" : "; settings from the config.json beside it")}");
        return HuggingFaceViTMae.ToOfficial(raw);
    }

    /// <summary>
    /// Whatever model the file holds: a <see cref="VisionTransformer"/> for a fine-tuned classifier (a <c>head</c>),
    /// otherwise a <see cref="MaskedAutoencoderViT"/> (see <see cref="LoadMae(string, MaeLoadOptions?, out StateDictLoadReport)"/>).
    /// Match on the type: <c>if (MaeModelFile.Load(path, null, out _) is VisionTransformer vit) ...</c>.
    /// </summary>
    public static nn.Module Load(string path, MaeLoadOptions? options, out StateDictLoadReport report) =>
        WithStateDict<nn.Module>(path, options, out report, (state, shapes, o, rep, fileConfig) => shapes.NumClasses is null
            ? BuildMae(path, state, shapes, o, rep, fileConfig)
            : BuildClassifier(path, state, shapes, o, rep, fileConfig));

    /// <summary>A MAE (encoder + decoder) with the file's weights. Strict by default; see <see cref="MaeLoadOptions"/>.</summary>
    public static MaskedAutoencoderViT LoadMae(string path, MaeLoadOptions? options = null) => LoadMae(path, options, out _);

    /// <inheritdoc cref="LoadMae(string, MaeLoadOptions?)"/>
    /// <param name="path">A .maeml, .pth or .safetensors file (recognised from its content).</param>
    /// <param name="options">Heads, strictness, resolution; null for the defaults.</param>
    /// <param name="report">What was loaded, initialised, left out or resized, and where the heads came from.</param>
    public static MaskedAutoencoderViT LoadMae(string path, MaeLoadOptions? options, out StateDictLoadReport report) =>
        WithStateDict(path, options, out report, (state, shapes, o, rep, fileConfig) => BuildMae(path, state, shapes, o, rep, fileConfig));

    /// <summary>
    /// A ViT classifier (official <c>models_vit</c>) from a fine-tuned file (<c>head</c>, <c>fc_norm</c>), or, to start
    /// fine-tuning as <c>main_finetune.py</c> does, from a pretrain / MAE file: the decoder is ignored, <c>head</c> and
    /// <c>fc_norm</c> are initialised (set <see cref="MaeLoadOptions.NumClasses"/>) and, with global pooling, the
    /// pretrained <c>norm</c> is ignored. The position table is interpolated when <see cref="MaeLoadOptions.ImageSize"/> differs.
    /// </summary>
    public static VisionTransformer LoadClassifier(string path, MaeLoadOptions? options = null) => LoadClassifier(path, options, out _);

    /// <inheritdoc cref="LoadClassifier(string, MaeLoadOptions?)"/>
    public static VisionTransformer LoadClassifier(string path, MaeLoadOptions? options, out StateDictLoadReport report) =>
        WithStateDict(path, options, out report, (state, shapes, o, rep, fileConfig) => BuildClassifier(path, state, shapes, o, rep, fileConfig));

    delegate T Builder<T>(Dictionary<string, Tensor> state, InferredShapes shapes, MaeLoadOptions options, StateDictLoadReport report, MaeConfig? fileConfig);

    /// <summary>Reads the file once, hands its tensors and shapes to <paramref name="build"/>, disposes the tensors.</summary>
    static T WithStateDict<T>(string path, MaeLoadOptions? options, out StateDictLoadReport report, Builder<T> build)
    {
        options ??= new MaeLoadOptions();
        var rep = new StateDictLoadReport(path);
        var state = Read(path, options, rep.Notes, out _, out _, out var fileConfig);
        try
        {
            var shapes = ConfigInference.ReadShapes(Shapes(state), path);
            var model = build(state, shapes, options, rep, fileConfig);
            report = rep;
            return model;
        }
        finally { foreach (var t in state.Values) t.Dispose(); }
    }

    static MaskedAutoencoderViT BuildMae(string path, Dictionary<string, Tensor> state, InferredShapes shapes, MaeLoadOptions options,
                                         StateDictLoadReport rep, MaeConfig? fileConfig)
    {
        if (shapes.NumClasses is not null && options.Strict)
            throw new InvalidDataException($"'{path}' is a fine-tuned classifier (head of {shapes.NumClasses} classes), not a MAE: load it with MaeModelFile.LoadClassifier");
        if (!shapes.HasDecoder)
        {
            if (options.Strict && !options.AllowMissingDecoder)
                throw new InvalidDataException($"'{path}' holds only the encoder (an official mae_pretrain_* or Hugging Face ViTMAEModel file): " +
                    "the MAE decoder would be left at initialisation. Set MaeLoadOptions.AllowMissingDecoder (CLI --encoder-only) to load it for " +
                    "encoder use, or use LoadClassifier to fine-tune");
            rep.Notes.Add("encoder-only file: the decoder is left at its initialisation; use the encoder (ForwardEncoder, ForwardFeatures) only");
        }
        var config = ConfigInference.InferMae(shapes, path, options, fileConfig, rep.Notes);
        ConfigInference.CheckAgainstTensors(config, shapes, Shapes(state), path);
        var model = new MaskedAutoencoderViT(config);
        try
        {
            StateDictLoader.Load(model, state, rep, options.Strict,
                expectedMissing: name => !shapes.HasDecoder && !MaskedAutoencoderViT.IsEncoderKey(name));
        }
        catch { model.Dispose(); throw; }
        return model;
    }

    static VisionTransformer BuildClassifier(string path, Dictionary<string, Tensor> state, InferredShapes shapes, MaeLoadOptions options,
                                             StateDictLoadReport rep, MaeConfig? fileConfig)
    {
        var encoder = ConfigInference.InferMae(shapes with { HasDecoder = false }, path, options, fileConfig, rep.Notes, encoderOnly: true);
        ConfigInference.CheckAgainstTensors(encoder, shapes, Shapes(state), path, withDecoder: false);
        int classes = options.NumClasses ?? shapes.NumClasses ?? 0;
        bool replaceHead = shapes.NumClasses is { } fileClasses && fileClasses != classes;
        bool globalPool = options.GlobalPool ?? (shapes.HasFcNorm || shapes.NumClasses is null);
        bool dropNorm = globalPool && !shapes.HasFcNorm;   // pretrained encoder's final norm: unused with global pooling
        if (replaceHead) rep.Notes.Add($"head: the file's {shapes.NumClasses} classes replaced by a new head of {classes}");
        var model = new VisionTransformer(new VitClassifierConfig(encoder, classes, globalPool));
        try
        {
            StateDictLoader.Load(model, state, rep, options.Strict,
                expectedMissing: name => (name.StartsWith("head.", StringComparison.Ordinal) && (shapes.NumClasses is null || replaceHead))
                                      || (name.StartsWith("fc_norm.", StringComparison.Ordinal) && !shapes.HasFcNorm),
                ignore: name => !MaskedAutoencoderViT.IsEncoderKey(name)
                                || (replaceHead && name.StartsWith("head.", StringComparison.Ordinal))
                                || (dropNorm && name.StartsWith("norm.", StringComparison.Ordinal)));
        }
        catch { model.Dispose(); throw; }
        return model;
    }

    /// <summary>
    /// Saves a model (<see cref="MaskedAutoencoderViT"/>, <see cref="VisionTransformer"/>, or any module with official
    /// names) in the format its extension names: <c>.pth</c> (<c>{'model': state_dict}</c>, what <c>models_mae</c> loads),
    /// <c>.safetensors</c>, or <c>.maeml</c> (MAE only). Atomic.
    /// </summary>
    public static void Save(nn.Module model, string path, StateDictNaming naming = StateDictNaming.Official)
    {
        if (ModelFileFormats.FromExtension(path) == ModelFileFormat.MaeMl)
        {
            if (model is not MaskedAutoencoderViT mae) throw new ArgumentException($"Only a MaskedAutoencoderViT can be saved as a MaeMl checkpoint ('{path}'); use .pth or .safetensors");
            MaeCheckpoint.Save(path, mae);
            return;
        }
        SaveStateDict(model.state_dict(), path, naming);
    }

    /// <summary>Writes official-named tensors as <c>.pth</c> (<c>{'model': ...}</c>) or <c>.safetensors</c>, by extension.</summary>
    public static void SaveStateDict(IReadOnlyDictionary<string, Tensor> stateDict, string path, StateDictNaming naming = StateDictNaming.Official)
    {
        using var scope = NewDisposeScope();
        var named = naming == StateDictNaming.HuggingFace ? HuggingFaceViTMae.FromOfficial(stateDict) : stateDict;
        switch (ModelFileFormats.FromExtension(path))
        {
            case ModelFileFormat.PyTorch: PyTorchCheckpointFile.Write(path, named); break;
            case ModelFileFormat.Safetensors: SafetensorsFile.Write(path, named); break;
            default: throw new ArgumentException($"A state dict alone cannot be saved as '{path}': a MaeMl checkpoint needs a model (use Save with a MaskedAutoencoderViT)");
        }
    }

    /// <summary>Lists a file's tensors and what can be inferred from them (the configuration, or why not).</summary>
    public static ModelFileInfo Inspect(string path, MaeLoadOptions? options = null)
    {
        options ??= new MaeLoadOptions();
        var notes = new List<string>();
        var tensors = new List<TensorInfo>();
        var state = Read(path, options, notes, out var format, out var naming, out var fileConfig, tensors);
        try
        {
            InferredShapes? shapes = null;
            MaeConfig? config = null;
            string? problem = null;
            try
            {
                shapes = ConfigInference.ReadShapes(Shapes(state), path);
                var inferred = ConfigInference.InferMae(shapes, path, options, fileConfig, notes);
                ConfigInference.CheckAgainstTensors(inferred, shapes, Shapes(state), path);
                config = inferred;
                if (shapes.NumClasses is { } classes) notes.Add($"fine-tuned classifier: {classes} classes, {(shapes.HasFcNorm ? "global pool + fc_norm" : "cls token + norm")}");
                else if (!shapes.HasDecoder) notes.Add("encoder only (no decoder)");
            }
            catch (Exception e) when (e is InvalidDataException or ArgumentException) { problem = e.Message; }
            return new ModelFileInfo(path, format, naming, tensors, notes, shapes, config, problem);
        }
        finally { foreach (var t in state.Values) t.Dispose(); }
    }

    static Dictionary<string, long[]> Shapes(IReadOnlyDictionary<string, Tensor> state) =>
        state.ToDictionary(kv => kv.Key, kv => kv.Value.shape, StringComparer.Ordinal);
}
