using System.Text.Json;
using MaeMl.Checkpoints;

namespace MaeMl.Segmentation;

/// <summary>Trained segmenters on disk (<c>segment-train --out</c>), in the <see cref="DenseModelFile"/> container.</summary>
public static class SegmentationModelFile
{
    /// <summary>Writes <paramref name="model"/> with its configuration, <paramref name="classNames"/> and <paramref name="ignoreIndex"/>
    /// to <paramref name="path"/> atomically.</summary>
    public static void Save(SegmentationModel model, string path, IReadOnlyList<string> classNames, int ignoreIndex) =>
        DenseModelFile.Write(path, Header(model, classNames, ignoreIndex), model);

    /// <summary>The file header of <paramref name="model"/>: its configuration, class names and ignore index.</summary>
    public static DenseModelHeader Header(SegmentationModel model, IReadOnlyList<string> classNames, int ignoreIndex) =>
        new("segmentation", JsonSerializer.SerializeToNode(model.Config)!, classNames, ignoreIndex);

    /// <summary>A segmenter built from the file's configuration with its weights, in eval mode, and the header (class names, ignore index).</summary>
    /// <exception cref="InvalidDataException">Not a segmenter file.</exception>
    public static (SegmentationModel Model, DenseModelHeader Header) Load(string path) =>
        DenseModelFile.Load(path, "segmentation", json => new SegmentationModel(json.Deserialize<SegmentationConfig>()
            ?? throw new InvalidDataException($"'{path}': empty segmentation configuration")));
}
