using MaeMl.Onnx;
using Microsoft.ML;

namespace MaeMl.MLNet;

/// <summary>ML.NET catalog extensions of MaeMl.</summary>
public static class MaeEncoderCatalog
{
    /// <summary>
    /// Featurizes an image column with a MAE encoder exported to ONNX (<c>maeml export-onnx</c>): resize to the model's size
    /// (centre crop), extract RGB pixels, run the encoder (ImageNet normalisation is inside the graph) and write the
    /// embedding as a known-size vector of <see cref="float"/>, ready for ML.NET trainers. ML.NET scores rows one at a time;
    /// for bulk featurization outside a pipeline <see cref="MaeEncoder"/> runs batches and is faster.
    /// </summary>
    /// <param name="catalog">The transforms catalog (<c>mlContext.Transforms</c>).</param>
    /// <param name="outputColumnName">Column to create with the embedding.</param>
    /// <param name="inputColumnName">Image column (<see cref="Microsoft.ML.Data.MLImage"/>) or vector of 3*S*S floats (RGB planes, 0..255).</param>
    /// <param name="modelFile">The encoder ONNX file.</param>
    /// <param name="pooling">Embedding to output; the file must have been exported with it.</param>
    /// <param name="gpuDeviceId">CUDA device, or null for the CPU.</param>
    /// <param name="fallbackToCpu">Use the CPU when the GPU cannot be used.</param>
    /// <exception cref="FileNotFoundException">The model file does not exist.</exception>
    /// <exception cref="InvalidDataException">The model file is not an encoder exported by MaeMl.</exception>
    public static MaeEncoderEstimator ApplyMaeEncoder(this TransformsCatalog catalog, string outputColumnName, string inputColumnName, string modelFile,
        EncoderPooling pooling = EncoderPooling.Cls, int? gpuDeviceId = null, bool fallbackToCpu = true) =>
        catalog.ApplyMaeEncoder(new MaeEncoderOptions
        {
            OutputColumnName = outputColumnName,
            InputColumnName = inputColumnName,
            ModelFile = modelFile,
            Pooling = pooling,
            GpuDeviceId = gpuDeviceId,
            FallbackToCpu = fallbackToCpu,
        });

    /// <summary>Featurizes an image column with a MAE encoder exported to ONNX; see <see cref="MaeEncoderOptions"/> for the settings.</summary>
    public static MaeEncoderEstimator ApplyMaeEncoder(this TransformsCatalog catalog, MaeEncoderOptions options) => new(catalog, options);
}
