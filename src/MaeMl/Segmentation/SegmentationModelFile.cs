using System.Text.Json;
using MaeMl.Checkpoints;

namespace MaeMl.Segmentation;

/// <summary>Trained segmenters on disk (<c>segment-train --out</c>), in the <see cref="DenseModelFile"/> container.</summary>
public static class SegmentationModelFile
{
    public static void Save(SegmentationModel model, string path, IReadOnlyList<string> classNames, int ignoreIndex) =>
        DenseModelFile.Write(path, new DenseModelHeader("segmentation", JsonSerializer.SerializeToNode(model.Config)!, classNames, ignoreIndex), model);

    /// <exception cref="InvalidDataException">Not a segmenter file.</exception>
    public static (SegmentationModel Model, DenseModelHeader Header) Load(string path) =>
        DenseModelFile.Load(path, "segmentation", json => new SegmentationModel(json.Deserialize<SegmentationConfig>()
            ?? throw new InvalidDataException($"'{path}': empty segmentation configuration")));
}
