using System.Text.Json;
using MaeMl.Checkpoints;

namespace MaeMl.Detection;

/// <summary>Trained detectors on disk (<c>detect-train --out</c>), in the <see cref="DenseModelFile"/> container.</summary>
public static class DetectionModelFile
{
    /// <summary>Writes the detector, its configuration and class names (atomically).</summary>
    public static void Save(DetectionModel model, string path, IReadOnlyList<string> classNames) => DenseModelFile.Write(path, Header(model, classNames), model);

    /// <summary>The file header of <paramref name="model"/>: its configuration and class names.</summary>
    public static DenseModelHeader Header(DetectionModel model, IReadOnlyList<string> classNames) =>
        new("detection", JsonSerializer.SerializeToNode(model.Config)!, classNames);

    /// <exception cref="InvalidDataException">Not a detector file.</exception>
    public static (DetectionModel Model, DenseModelHeader Header) Load(string path) =>
        DenseModelFile.Load(path, "detection", json => new DetectionModel(json.Deserialize<DetectionConfig>()
            ?? throw new InvalidDataException($"'{path}': empty detection configuration")));
}
