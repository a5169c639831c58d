using MaeMl.Interop;
using MaeMl.Model;

namespace MaeMl.Pretrained;

/// <summary>A model MaeMl ships (a MAE, or a classifier fine-tuned from one): its files and the architecture settings shapes cannot tell.</summary>
/// <param name="Name">The name to pass to <see cref="MaePretrained.Load(string, MaeLoadOptions?)"/>.</param>
/// <param name="WeightsFile">The one shipped file, MaeMl checkpoint format: a MAE's full weights (encoder + decoder; official .pth: `maeml convert`),
/// or a classifier's (encoder + head; <see cref="MaePretrained.LoadClassifier"/>, <c>ApplyMaeClassifier</c>, <c>maeml eval</c>).</param>
/// <param name="EncoderOnnxFile">The encoder exported to ONNX with preprocessing (a MAE's: cls, mean and tokens outputs; a global-pool classifier's:
/// its fine-tuned mean features): not shipped, written
/// from the weights at first use (see <see cref="MaePretrained.EncoderOnnxPath"/>).</param>
/// <param name="Preset">The <see cref="MaePresets"/> name of the architecture.</param>
/// <param name="Description">What it was trained on and how.</param>
public sealed record PretrainedModel(string Name, string WeightsFile, string EncoderOnnxFile, string Preset, string Description);

/// <summary>
/// Loads the models MaeMl ships (<c>MaePretrained.Load("cifar10-vit-tiny")</c>) or any MAE file by path. Shipped files are
/// looked for in <c>$MAEML_PRETRAINED</c>, in a <c>pretrained/</c> folder next to the application (where a build with
/// <c>&lt;MaeMlCopyPretrained&gt;true&lt;/MaeMlCopyPretrained&gt;</c> copies them), in <c>pretrained/</c> of the current folder or
/// any parent (a clone of the repository), and in the MaeMl NuGet package's own folder when MaeMl.dll is loaded from there
/// (a development machine, a notebook's <c>#r "nuget: MaeMl"</c>; not a deployed application).
/// </summary>
public static class MaePretrained
{
    /// <summary>Models shipped with MaeMl.</summary>
    public static IReadOnlyList<PretrainedModel> Available { get; } = new[]
    {
        new PretrainedModel("cifar10-vit-tiny", "cifar10-vit-tiny.maeml", "cifar10-vit-tiny-encoder.onnx", "mae_vit_tiny_patch4_img32",
            "MAE ViT-Tiny (32x32, patch 4, 192x6 encoder, 128x2 decoder) pretrained by `maeml pretrain` on the 50,000 CIFAR-10 training images (labels unused)"),
        new PretrainedModel("cifar10-vit-tiny-finetuned", "cifar10-vit-tiny-finetuned.maeml", "cifar10-vit-tiny-finetuned-encoder.onnx", "mae_vit_tiny_patch4_img32",
            "CIFAR-10 classifier (ViT-Tiny, global pool + fc_norm + 10-class head): cifar10-vit-tiny fine-tuned 50 epochs by `maeml finetune` on the 50,000 labelled training images; load with LoadClassifier"),
    };

    /// <summary>A file path (.maeml, .pth, .safetensors), or a shipped MAE by name; an existing file of that name wins.</summary>
    public static MaskedAutoencoderViT Load(string nameOrPath, MaeLoadOptions? options = null)
    {
        var (path, o) = Resolve(nameOrPath, options);
        return MaeModelFile.LoadMae(path, o);
    }

    /// <summary>A shipped fine-tuned classifier by name, or a classifier file by path (a <c>maeml finetune</c> checkpoint, an official
    /// fine-tuned .pth / safetensors): <see cref="MaeModelFile.LoadClassifier(string, MaeLoadOptions?)"/> on the file.</summary>
    public static VisionTransformer LoadClassifier(string nameOrPath, MaeLoadOptions? options = null)
    {
        var (path, o) = Resolve(nameOrPath, options);
        return MaeModelFile.LoadClassifier(path, o);
    }

    /// <summary>An existing path, else the file of a shipped name (with the model's preset unless the caller sets one): the order
    /// <see cref="ResolveFile"/> and the CLI use.</summary>
    static (string Path, MaeLoadOptions? Options) Resolve(string nameOrPath, MaeLoadOptions? options)
    {
        ArgumentNullException.ThrowIfNull(nameOrPath);
        if (File.Exists(nameOrPath)) return (nameOrPath, options);
        if (Find(nameOrPath) is { } known)
            return (WeightsPath(known.Name), (options ?? new MaeLoadOptions()) with { Preset = options?.Preset ?? known.Preset });
        throw NeitherFileNorShipped($"'{nameOrPath}'", nameOrPath);
    }

    /// <summary>A weights file path as given, or the weights file of a shipped model named so (<c>cifar10-vit-tiny</c>); an existing
    /// file wins over a name. Anything else is returned unchanged, so the caller's "does not exist" error names it.</summary>
    public static string ResolveFile(string nameOrPath)
    {
        ArgumentNullException.ThrowIfNull(nameOrPath);
        if (File.Exists(nameOrPath) || Find(nameOrPath) is null) return nameOrPath;
        return WeightsPath(nameOrPath);
    }

    /// <summary><see cref="ResolveFile"/>, and the file must exist: the error names <paramref name="what"/> (e.g. "classifier") and the shipped models.</summary>
    /// <exception cref="FileNotFoundException">Neither a file nor a shipped model (or a shipped model whose file is not found).</exception>
    internal static string ResolveExisting(string nameOrPath, string what)
    {
        var path = ResolveFile(nameOrPath);
        return File.Exists(path) ? path : throw NeitherFileNorShipped($"The {what} '{nameOrPath}'", nameOrPath);
    }

    static FileNotFoundException NeitherFileNorShipped(string subject, string nameOrPath) =>
        new($"{subject} is neither a file nor a shipped model ({string.Join(", ", Available.Select(m => m.Name))})", nameOrPath);

    /// <summary>Path of a shipped model's weights file.</summary>
    public static string WeightsPath(string name) => Locate(Require(name).WeightsFile);

    /// <summary>
    /// Path of a shipped model's encoder as ONNX (for <c>ApplyMaeEncoder</c>): the file beside the weights when there is one,
    /// otherwise exported from the weights at first use (cls, mean and tokens outputs, preprocessing inside) into
    /// <c>$XDG_CACHE_HOME/maeml</c> (or <c>~/.cache/maeml</c>), keyed by the weights' size and time, and reused afterwards.
    /// Only one copy of the weights is shipped; the ONNX and official <c>.pth</c> forms are derived on demand
    /// (<c>maeml export-onnx</c>, <c>maeml convert</c>).
    /// </summary>
    public static string EncoderOnnxPath(string name)
    {
        var model = Require(name);
        var beside = SearchFolders().Select(d => Path.Combine(d, model.EncoderOnnxFile)).FirstOrDefault(File.Exists);
        if (beside is not null) return beside;
        var weights = new FileInfo(WeightsPath(name));
        var cache = Path.Combine(CacheFolder(), $"{Path.GetFileNameWithoutExtension(model.EncoderOnnxFile)}-{weights.Length:x}-{weights.LastWriteTimeUtc.Ticks:x}.onnx");
        if (File.Exists(cache)) return cache;
        Directory.CreateDirectory(Path.GetDirectoryName(cache)!);
        Onnx.VitEncoderOnnxExporter.Save(BuildEncoderOnnx(weights.FullName, model.Preset), cache);
        return cache;
    }

    /// <summary>The encoder of a MAE or of a fine-tuned classifier file (its fine-tuned encoder, head left out) as ONNX: a MAE's with the cls,
    /// mean and tokens outputs, a global-pool classifier's with the mean output (<c>fc_norm</c> of the mean token, what its head reads).</summary>
    internal static global::Onnx.ModelProto BuildEncoderOnnx(string weightsFile, string? preset)
    {
        using var model = MaeModelFile.Load(weightsFile, new MaeLoadOptions { Preset = preset }, out _);
        return model switch
        {
            VisionTransformer vit => Onnx.VitEncoderOnnxExporter.BuildEncoder(vit),
            MaskedAutoencoderViT mae => Onnx.VitEncoderOnnxExporter.Build(mae.state_dict(), mae.Config),
            _ => throw new InvalidDataException($"'{weightsFile}' holds neither a MAE nor a classifier"),
        };
    }

    static string CacheFolder()
    {
        var root = Environment.GetEnvironmentVariable("XDG_CACHE_HOME");
        if (string.IsNullOrEmpty(root)) root = Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache");
        return Path.Combine(root, "maeml");
    }

    static PretrainedModel? Find(string name) => Available.FirstOrDefault(m => string.Equals(m.Name, name, StringComparison.OrdinalIgnoreCase));

    static PretrainedModel Require(string name) => Find(name)
        ?? throw new ArgumentException($"No shipped model named '{name}'. Available: {string.Join(", ", Available.Select(m => m.Name))}");

    /// <summary>The folders searched for shipped files, in order.</summary>
    public static IEnumerable<string> SearchFolders()
    {
        if (Environment.GetEnvironmentVariable("MAEML_PRETRAINED") is { Length: > 0 } env) yield return env;
        yield return Path.Combine(AppContext.BaseDirectory, "pretrained");
        for (var dir = new DirectoryInfo(Directory.GetCurrentDirectory()); dir is not null; dir = dir.Parent)
            yield return Path.Combine(dir.FullName, "pretrained");
        if (PackageFolder() is { } package) yield return package;
    }

    /// <summary><c>&lt;package&gt;/pretrained</c> when this assembly was loaded from <c>&lt;package&gt;/lib/&lt;tfm&gt;/MaeMl.dll</c> (the NuGet cache).</summary>
    static string? PackageFolder()
    {
        var location = typeof(MaePretrained).Assembly.Location;
        if (string.IsNullOrEmpty(location)) return null;
        var tfm = Directory.GetParent(location);
        if (tfm?.Parent is not { Name: "lib" } lib || lib.Parent is not { } package) return null;
        var folder = Path.Combine(package.FullName, "pretrained");
        return Directory.Exists(folder) ? folder : null;
    }

    static string Locate(string file) =>
        SearchFolders().Select(d => Path.Combine(d, file)).FirstOrDefault(File.Exists)
        ?? throw new FileNotFoundException($"Shipped model file '{file}' was not found in: {string.Join("; ", SearchFolders().Distinct())}. " +
                                           "Build the application with <MaeMlCopyPretrained>true</MaeMlCopyPretrained> (MSBuild property) to copy " +
                                           "the shipped weights into its output folder, or set MAEML_PRETRAINED to the folder that holds them " +
                                           "(the repository's pretrained/).", file);
}
